"""The article's code (section 5.2), verbatim, to run in the errata cells and show where it breaks.

The four code blocks of the article are kept here as text, as printed (comments and all; only
trailing spaces removed), and run on demand in a fresh namespace by :func:`load_article`. They cannot be
ordinary module code: the first block already fails at ``class ItemLoss(nn.Module)`` because
``nn`` is never imported. Pass the missing names to get further and meet the next mistake:

- ``ItemDataset.__getitem__`` rebinds ``item`` to the text, then indexes ``labels`` with the text;
- ``UserDataset.__getitem__`` stacks input ids *and* attention masks into one tensor and returns
  it both as ``item_input_ids`` and ``item_attention_mask``;
- ``ItemLoss`` applies ``BCEWithLogitsLoss`` to 2-class logits with integer labels;
- ``evaluate`` takes the arg-max of BCE logits; ``joint_train`` never reads ``dataset2``;
- the main loop "trains" on the validation set and uses ``AdamW``/``classification_report``
  without importing them (and ``transformers.AdamW`` no longer exists).

The corrected versions are :mod:`mtrec_utils.data.datasets` and :mod:`mtrec_utils.training.loop`.
"""

from __future__ import annotations

import ast
import builtins

ARTICLE_ITEM = """\
from transformers import BertTokenizer, BertForSequenceClassification
from torch.utils.data import Dataset
import torch

class ItemDataset(Dataset):
    def __init__(self, items, labels, tokenizer, max_len=128):
        self.items = items
        self.labels = labels
        self.tokenizer = tokenizer
        self.max_len = max_len

    def __len__(self):
        return len(self.items)

    def __getitem__(self, item):
        item = self.items[item]
        label = self.labels[item]

        encoding = self.tokenizer(item, return_tensors='pt', max_length=self.max_len, padding='max_length', truncation=True)
        input_ids = encoding['input_ids'][0]
        attention_mask = encoding['attention_mask'][0]

        return {'input_ids': input_ids,
                'attention_mask': attention_mask,
                'labels': label}

# 定义商品推荐任务的损失函数
class ItemLoss(nn.Module):
    def __init__(self):
        super(ItemLoss, self).__init__()
        self.loss = nn.BCEWithLogitsLoss()

    def forward(self, outputs, labels):
        predictions = outputs.logits
        loss = self.loss(predictions, labels)
        return loss

# 训练和评估函数
def train_epoch(model, dataset, batch_size, optimizer, loss_fn):
    dataloader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    model.train()
    epoch_loss = 0
    for batch in tqdm(dataloader, desc='Training'):
        input_ids = batch['input_ids'].to(device)
        attention_mask = batch['attention_mask'].to(device)
        labels = batch['labels'].to(device)
        model.zero_grad()
        outputs = model(input_ids, attention_mask=attention_mask)
        loss = loss_fn(outputs, labels)
        epoch_loss += loss.item()
        loss.backward()
        optimizer.step()
    return epoch_loss / len(dataloader)

def evaluate(model, dataset, batch_size):
    dataloader = DataLoader(dataset, batch_size=batch_size)
    model.eval()
    preds, labels = [], []
    with torch.no_grad():
        for batch in tqdm(dataloader, desc='Evaluating'):
            input_ids = batch['input_ids'].to(device)
            attention_mask = batch['attention_mask'].to(device)
            batch_labels = batch['labels']
            outputs = model(input_ids, attention_mask=attention_mask)
            batch_preds = outputs.logits.argmax(dim=1).to('cpu').tolist()
            batch_labels = batch_labels.to('cpu').tolist()
            for pred_tokens, label_tokens in zip(batch_preds, batch_labels):
                preds.append(pred_tokens)
                labels.append(label_tokens)

    return preds, labels
"""

ARTICLE_USER = """\
from transformers import BertTokenizer, BertForSequenceClassification
from torch.utils.data import Dataset
import torch

class UserDataset(Dataset):
    def __init__(self, users, items, labels, tokenizer, max_len=128):
        self.users = users
        self.items = items
        self.labels = labels
        self.tokenizer = tokenizer
        self.max_len = max_len

    def __len__(self):
        return len(self.users)

    def __getitem__(self, item):
        user = self.users[item]
        items = self.items[item]
        label = self.labels[item]

        encoding = self.tokenizer(user, return_tensors='pt', max_length=self.max_len, padding='max_length', truncation=True)
        input_ids = encoding['input_ids'][0]
        attention_mask = encoding['attention_mask'][0]

        item_encodings = []
        for item in items:
            item_encoding = self.tokenizer(item, return_tensors='pt', max_length=self.max_len, padding='max_length', truncation=True)
            item_encodings.append(item_encoding['input_ids'][0])
            item_encodings.append(item_encoding['attention_mask'][0])
        item_input_ids = torch.stack(item_encodings, dim=0)
        item_attention_mask = torch.stack(item_encodings, dim=0)

        return {'user_input_ids': input_ids,
                'user_attention_mask': attention_mask,
                'item_input_ids': item_input_ids,
                'item_attention_mask': item_attention_mask,
                'labels': label}

# 定义用户兴趣建模任务的损失函数
class UserLoss(nn.Module):
    def __init__(self):
        super(UserLoss, self).__init__()
        self.loss = nn.BCEWithLogitsLoss()

    def forward(self, outputs, labels):
        predictions = outputs.logits
        loss = self.loss(predictions, labels)
        return loss

# 训练和评估函数
def train_epoch(model, dataset, batch_size, optimizer, loss_fn):
    dataloader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    model.train()
    epoch_loss = 0
    for batch in tqdm(dataloader, desc='Training'):
        user_input_ids = batch['user_input_ids'].to(device)
        user_attention_mask = batch['user_attention_mask'].to(device)
        item_input_ids = batch['item_input_ids'].to(device)
        item_attention_mask = batch['item_attention_mask'].to(device)
        labels = batch['labels'].to(device)
        model.zero_grad()
        outputs = model(user_input_ids, user_attention_mask=user_attention_mask, item_input_ids=item_input_ids, item_attention_mask=item_attention_mask)
        loss = loss_fn(outputs, labels)
        epoch_loss += loss.item()
        loss.backward()
        optimizer.step()
    return epoch_loss / len(dataloader)

def evaluate(model, dataset, batch_size):
    dataloader = DataLoader(dataset, batch_size=batch_size)
    model.eval()
    preds, labels = [], []
    with torch.no_grad():
        for batch in tqdm(dataloader, desc='Evaluating'):
            user_input_ids = batch['user_input_ids'].to(device)
            user_attention_mask = batch['user_attention_mask'].to(device)
            item_input_ids = batch['item_input_ids'].to(device)
            item_attention_mask = batch['item_attention_mask'].to(device)
            batch_labels = batch['labels']
            outputs = model(user_input_ids, user_attention_mask=user_attention_mask, item_input_ids=item_input_ids, item_attention_mask=item_attention_mask)
            batch_preds = outputs.logits.argmax(dim=1).to('cpu').tolist()
            batch_labels = batch_labels.to('cpu').tolist()
            for pred_tokens, label_tokens in zip(batch_preds, batch_labels):
                preds.append(pred_tokens)
                labels.append(label_tokens)

    return preds, labels
"""

ARTICLE_JOINT = """\
def joint_train(model, dataset1, dataset2, batch_size, optimizer, loss_fn):
    model.train()
    epoch_loss = 0
    for batch in tqdm(dataloader(dataset1, batch_size), desc='Training'):
        input_ids = batch['input_ids'].to(device)
        attention_mask = batch['attention_mask'].to(device)
        labels = batch['labels'].to(device)
        model.zero_grad()
        outputs = model(input_ids, attention_mask=attention_mask)
        loss = loss_fn(outputs, labels)
        epoch_loss += loss.item()
        loss.backward()
        optimizer.step()
    return epoch_loss / len(dataset1)

def joint_eval(model, dataset1, dataset2, batch_size):
    model.eval()
    preds, labels = [], []
    with torch.no_grad():
        for batch in tqdm(dataloader(dataset1, batch_size), desc='Evaluating'):
            input_ids = batch['input_ids'].to(device)
            attention_mask = batch['attention_mask'].to(device)
            labels = batch['labels'].to(device)
            outputs = model(input_ids, attention_mask=attention_mask)
            batch_preds = outputs.logits.argmax(dim=1).to('cpu').tolist()
            batch_labels = batch_labels.to('cpu').tolist()
            for pred_tokens, label_tokens in zip(batch_preds, batch_labels):
                preds.append(pred_tokens)
                labels.append(label_tokens)

    return preds, labels
"""

ARTICLE_MAIN = """\
epochs = 5
batch_size = 16

# 定义模型和优化器
model = BertForSequenceClassification.from_pretrained('bert-base-cased', num_labels=2)
optimizer = AdamW(model.parameters(), lr=2e-5)

# 定义数据集
tokenizer = BertTokenizer.from_pretrained('bert-base-cased')

train_dataset1 = ItemDataset(train_items1, train_labels1, tokenizer)
train_dataset2 = UserDataset(train_users1, train_items1, train_labels1, tokenizer)
val_dataset1 = ItemDataset(val_items1, val_labels1, tokenizer)
val_dataset2 = UserDataset(val_users1, val_items1, val_labels1, tokenizer)
test_dataset1 = ItemDataset(test_items1, test_labels1, tokenizer)
test_dataset2 = UserDataset(test_users1, test_items1, test_labels1, tokenizer)

# 定义损失函数
loss_fn1 = ItemLoss()
loss_fn2 = UserLoss()

# 联合训练
for epoch in range(epochs):
    loss1 = joint_train(model, train_dataset1, train_dataset2, batch_size, optimizer, loss_fn1)
    print(f"Epoch {epoch+1}, item loss: {loss1:.3f}")

    loss2 = joint_train(model, val_dataset1, val_dataset2, batch_size, optimizer, loss_fn2)
    print(f"Epoch {epoch+1}, user loss: {loss2:.3f}")

print("Epochs finished, joint training results:")
print(f"Item loss: {loss1:.3f}, User loss: {loss2:.3f}")

# 测试
print("Joint testing results:")
preds1, labels1 = joint_eval(model, test_dataset1, test_dataset2, batch_size)
print(classification_report(labels1, preds1))
"""

ARTICLE_CODE = {"item": ARTICLE_ITEM, "user": ARTICLE_USER, "joint": ARTICLE_JOINT, "main": ARTICLE_MAIN}


def article_source(block: str) -> str:
    """The text of one article code block: ``"item"``, ``"user"``, ``"joint"`` or ``"main"``."""
    from mtrec_utils.core.config import check_choice

    return ARTICLE_CODE[check_choice("block", block, tuple(ARTICLE_CODE))]


def missing_names(block: str) -> list[str]:
    """Names the block reads but never imports, defines or assigns (sorted): its missing imports and data."""
    tree = ast.parse(article_source(block))
    bound: set[str] = set(dir(builtins))
    read: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
    return sorted(read - bound)


def load_article(block: str, **provided) -> dict:
    """Execute one article block in a fresh namespace and return the namespace.

    Args:
        block: ``"item"``, ``"user"``, ``"joint"`` or ``"main"``.
        **provided: names to supply first (e.g. ``nn=torch.nn`` for the missing import).

    Raises:
        Whatever the article's code raises (e.g. ``NameError: name 'nn' is not defined``).
    """
    namespace = {"__name__": f"article_{block}", **provided}
    exec(compile(article_source(block), f"<article {block}>", "exec"), namespace)
    return namespace
