"""An in-memory stand-in for the boto3 DynamoDB resource, for the property and interleaving tests.

moto costs ~7 ms a call; the property tests make thousands. This fake covers
just what the connection, presence and event stores use (put/get/update/delete,
batch writer, BatchGetItem, TransactWriteItems, Scan/Query with filters, Limit
and pages) and evaluates
their real expressions with DynamoDB's rules: every SET right-hand side reads
the item as it was before the update, ADD/DELETE work on sets and numbers, an
emptied set disappears, a missing attribute makes a comparison false.
presence/test_properties.py and events/test_store_interleavings.py check that
it agrees with moto. `before_call(operation)` runs before every request: tests
use it to interleave writers request by request.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ClientError

_TOKEN = re.compile(r"\s*(<>|<=|>=|[=<>(),+\-]|#\w+|:\w+|[A-Za-z_][\w.]*)")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_MISSING = object()


def _tokens(expression: str) -> list[str]:
    tokens, position = [], 0
    expression = expression.strip()
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if not match:
            raise ValueError(f"cannot parse {expression[position:]!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, expression: str, names: dict[str, str], values: dict[str, Any]) -> None:
        self.tokens = _tokens(expression)
        self.position = 0
        self.names = names
        self.values = values

    def peek(self, offset: int = 0) -> str | None:
        index = self.position + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.tokens[self.position]
        if expected is not None and token.upper() != expected:
            raise ValueError(f"expected {expected}, got {token}")
        self.position += 1
        return token

    def path(self) -> str:
        token = self.take()
        return self.names[token] if token.startswith("#") else token

    # --- operands: a function of the item -------------------------------------------

    def operand(self) -> Callable[[dict], Any]:
        token = self.peek()
        if token.startswith(":"):
            value = self.values[self.take()]
            return lambda item: value
        if token in ("if_not_exists", "size") and self.peek(1) == "(":
            self.take()
            self.take("(")
            path = self.path()
            if token == "size":
                self.take(")")
                return lambda item: len(item[path]) if path in item else _MISSING
            self.take(",")
            fallback = self.value()
            self.take(")")
            return lambda item: item[path] if path in item else fallback(item)
        path = self.path()
        return lambda item: item.get(path, _MISSING)

    def value(self) -> Callable[[dict], Any]:
        left = self.operand()
        if self.peek() in ("+", "-"):
            sign = 1 if self.take() == "+" else -1
            right = self.operand()

            def arithmetic(item: dict) -> Any:
                a, b = left(item), right(item)
                return _MISSING if a is _MISSING or b is _MISSING else a + sign * b

            return arithmetic
        return left

    # --- conditions -------------------------------------------------------------------

    def condition(self) -> Callable[[dict], bool]:
        terms = [self.conjunction()]
        while (self.peek() or "").upper() == "OR":
            self.take()
            terms.append(self.conjunction())
        return lambda item: any(term(item) for term in terms)

    def conjunction(self) -> Callable[[dict], bool]:
        terms = [self.negation()]
        while (self.peek() or "").upper() == "AND":
            self.take()
            terms.append(self.negation())
        return lambda item: all(term(item) for term in terms)

    def negation(self) -> Callable[[dict], bool]:
        if (self.peek() or "").upper() == "NOT":
            self.take()
            inner = self.negation()
            return lambda item: not inner(item)
        return self.primary()

    def primary(self) -> Callable[[dict], bool]:
        token = self.peek()
        if token == "(":
            self.take()
            inner = self.condition()
            self.take(")")
            return inner
        if token in ("attribute_exists", "attribute_not_exists", "contains", "begins_with"):
            self.take()
            self.take("(")
            path = self.path()
            if token == "attribute_exists":
                self.take(")")
                return lambda item: path in item
            if token == "attribute_not_exists":
                self.take(")")
                return lambda item: path not in item
            self.take(",")
            argument = self.operand()
            self.take(")")
            if token == "contains":
                return lambda item: path in item and argument(item) in item[path]
            return lambda item: isinstance(item.get(path), str) and item[path].startswith(argument(item))
        left = self.operand()
        compare = _COMPARE[self.take()]
        right = self.operand()

        def evaluate(item: dict) -> bool:
            a, b = left(item), right(item)
            if a is _MISSING or b is _MISSING or (type(a) is not type(b) and not _both_numbers(a, b)):
                return False
            return compare(a, b)

        return evaluate


def _both_numbers(a: Any, b: Any) -> bool:
    return all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))


def _condition(expression: str | None, names: dict, values: dict) -> Callable[[dict], bool]:
    if not expression:
        return lambda item: True
    parser = _Parser(expression, names, values)
    condition = parser.condition()
    if parser.peek() is not None:
        raise ValueError(f"trailing tokens in {expression!r}")
    return condition


def _apply_update(item: dict, expression: str, names: dict, values: dict) -> dict:
    parser = _Parser(expression, names, values)
    actions: list[tuple[str, str, Callable[[dict], Any] | None]] = []
    clause = None
    while parser.peek() is not None:
        if parser.peek().upper() in ("SET", "ADD", "DELETE", "REMOVE"):
            clause = parser.take().upper()
        elif parser.peek() == ",":
            parser.take()
        path = parser.path()
        if clause == "SET":
            parser.take("=")
            actions.append((clause, path, parser.value()))
        elif clause == "REMOVE":
            actions.append((clause, path, None))
        else:
            actions.append((clause, path, parser.operand()))
    # Every right-hand side reads the item as it was before this update.
    evaluated = [(clause, path, value(item) if value else None) for clause, path, value in actions]
    new = copy.deepcopy(item)
    for clause, path, value in evaluated:
        if value is _MISSING:
            raise _validation("an operand refers to a missing attribute")
        if clause == "SET":
            new[path] = copy.deepcopy(value)
        elif clause == "REMOVE":
            new.pop(path, None)
        elif clause == "ADD" and isinstance(value, set):
            new[path] = set(new.get(path, set())) | value
        elif clause == "ADD":
            new[path] = new.get(path, 0) + value
        elif clause == "DELETE":
            remaining = set(new.get(path, set())) - value
            if remaining:
                new[path] = remaining
            else:
                new.pop(path, None)  # DynamoDB never stores an empty set
    return new


def _validation(message: str) -> ClientError:
    return ClientError({"Error": {"Code": "ValidationException", "Message": message}}, "UpdateItem")


def _condition_failed(operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}},
        operation,
    )


def _project(item: dict, projection: str | None, names: dict) -> dict:
    if not projection:
        return copy.deepcopy(item)
    wanted = [names.get(p.strip(), p.strip()) for p in projection.split(",")]
    return {k: copy.deepcopy(v) for k, v in item.items() if k in wanted}


class FakeTable:
    def __init__(self, db: FakeDynamoDB, name: str, key_names: tuple[str, ...], page_size: int) -> None:
        self.db = db
        self.name = name
        self.key_names = key_names
        self.items: dict[tuple, dict] = {}
        self.page_size = page_size
        self.calls = 0

    def _called(self, operation: str) -> None:
        self.calls += 1
        self.db.before_call(operation)

    def _key(self, key: dict) -> tuple:
        return tuple(key[k] for k in self.key_names)

    def put_item(self, *, Item: dict, **_: Any) -> dict:
        self._called("PutItem")
        self.items[self._key(Item)] = copy.deepcopy(Item)
        return {}

    def get_item(self, *, Key: dict, **_: Any) -> dict:
        self._called("GetItem")
        item = self.items.get(self._key(Key))
        return {"Item": copy.deepcopy(item)} if item is not None else {}

    def delete_item(self, *, Key: dict, **_: Any) -> dict:
        self._called("DeleteItem")
        self.items.pop(self._key(Key), None)
        return {}

    def update_item(
        self,
        *,
        Key: dict,
        UpdateExpression: str,
        ConditionExpression: str | None = None,
        ExpressionAttributeNames: dict | None = None,
        ExpressionAttributeValues: dict | None = None,
        ReturnValues: str = "NONE",
    ) -> dict:
        self._called("UpdateItem")
        names, values = ExpressionAttributeNames or {}, ExpressionAttributeValues or {}
        old = self.items.get(self._key(Key))
        if not _condition(ConditionExpression, names, values)(old or {}):
            raise _condition_failed("UpdateItem")
        new = self._updated(Key, UpdateExpression, names, values)
        self.items[self._key(Key)] = new
        return {"Attributes": copy.deepcopy(new)} if ReturnValues == "ALL_NEW" else {}

    def _updated(self, key: dict, expression: str, names: dict, values: dict) -> dict:
        old = self.items.get(self._key(key))
        return _apply_update(copy.deepcopy(old) if old is not None else copy.deepcopy(key), expression, names, values)

    def batch_writer(self) -> _BatchWriter:
        return _BatchWriter(self)

    def _pages(self, operation: str, keys: list[tuple], matches: Callable[[dict], bool], request: dict) -> dict:
        """One page of `keys` (in key order), at most Limit (or the page size) evaluated, filtered by `matches`."""
        self._called(operation)
        start = 0
        if "ExclusiveStartKey" in request:
            after = self._key(request["ExclusiveStartKey"])
            start = next((i for i, key in enumerate(keys) if key > after), len(keys))
        size = min(self.page_size, request.get("Limit", self.page_size))
        page_keys = keys[start : start + size]
        names = request.get("ExpressionAttributeNames", {})
        found = [self.items[k] for k in page_keys if matches(self.items[k])]
        response: dict[str, Any] = {
            "Items": [_project(i, request.get("ProjectionExpression"), names) for i in found],
            "Count": len(found),
            "ScannedCount": len(page_keys),  # evaluated, matching or not: what a read is charged for
        }
        # Like DynamoDB, a page that stops at its limit has a LastEvaluatedKey, even if nothing follows.
        if start + size < len(keys) or len(page_keys) == request.get("Limit"):
            response["LastEvaluatedKey"] = dict(zip(self.key_names, page_keys[-1], strict=True))
        return response

    def scan(self, **request: Any) -> dict:
        names, values = request.get("ExpressionAttributeNames", {}), request.get("ExpressionAttributeValues", {})
        # Key order across the table: a page ends at a key that may be deleted before the next page.
        return self._pages(
            "Scan", sorted(self.items), _condition(request.get("FilterExpression"), names, values), request
        )

    def query(self, **request: Any) -> dict:
        names, values = request.get("ExpressionAttributeNames", {}), request.get("ExpressionAttributeValues", {})
        key = _condition(request["KeyConditionExpression"], names, values)
        matches = _condition(request.get("FilterExpression"), names, values)
        # Only the items the key condition selects are evaluated (and count towards Limit).
        keys = sorted(k for k, item in self.items.items() if key(item))
        return self._pages("Query", keys, matches, request)


class _BatchWriter:
    def __init__(self, table: FakeTable) -> None:
        self._table = table

    def __enter__(self) -> _BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def put_item(self, *, Item: dict) -> None:
        self._table.put_item(Item=Item)

    def delete_item(self, *, Key: dict) -> None:
        self._table.delete_item(Key=Key)


class FakeDynamoDB:
    """The parts of `boto3.resource("dynamodb")` the stores use."""

    def __init__(self, page_size: int = 1000) -> None:
        self.tables: dict[str, FakeTable] = {}
        self.page_size = page_size
        self.before_call: Callable[[str], None] = lambda operation: None

    def create_table(self, name: str, *key_names: str) -> FakeTable:
        table = FakeTable(self, name, key_names, self.page_size)
        table.meta = SimpleNamespace(client=self)  # boto3: the resource's client, for batch and transaction calls
        self.tables[name] = table
        return table

    def Table(self, name: str) -> FakeTable:  # boto3's name
        return self.tables[name]

    def query(self, *, TableName: str, **request: Any) -> dict:  # the client's, as the resource's own
        return self.tables[TableName].query(**request)

    def batch_get_item(self, *, RequestItems: dict) -> dict:
        responses: dict[str, list] = {}
        for name, request in RequestItems.items():
            table = self.tables[name]
            table._called("BatchGetItem")
            names = request.get("ExpressionAttributeNames", {})
            found = [table.items.get(table._key(key)) for key in request["Keys"]]
            responses[name] = [_project(i, request.get("ProjectionExpression"), names) for i in found if i]
        return {"Responses": responses, "UnprocessedKeys": {}}

    def transact_write_items(self, *, TransactItems: list[dict]) -> dict:
        """All or nothing: every condition is checked first; any that fails cancels the lot, saying which."""
        actions = [next(iter(entry.items())) for entry in TransactItems]
        self.tables[actions[0][1]["TableName"]]._called("TransactWriteItems")
        reasons, writes = [], []
        for kind, request in actions:
            table = self.tables[request["TableName"]]
            key = request["Item"] if kind == "Put" else request["Key"]
            names, values = request.get("ExpressionAttributeNames", {}), request.get("ExpressionAttributeValues", {})
            held = _condition(request.get("ConditionExpression"), names, values)(table.items.get(table._key(key)) or {})
            reasons.append({"Code": "None"} if held else {"Code": "ConditionalCheckFailed", "Message": "failed"})
            if kind == "Put":
                writes.append((table, key, copy.deepcopy(request["Item"])))
            elif kind == "Update":
                writes.append((table, key, table._updated(key, request["UpdateExpression"], names, values)))
        if any(reason["Code"] != "None" for reason in reasons):
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
                    "CancellationReasons": reasons,
                },
                "TransactWriteItems",
            )
        for table, key, item in writes:
            table.items[table._key(key)] = item
        return {}

    def all_items(self, name: str) -> Iterator[dict]:
        yield from (copy.deepcopy(i) for i in self.tables[name].items.values())
