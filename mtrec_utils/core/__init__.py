"""Foundation: profiles and parameter checks (config), atomic writes (io), ``record`` (metrics files),
the environment report (env), metric functions (metrics) and nearest neighbours (similarity).

Nothing here imports another layer of the package.
"""
