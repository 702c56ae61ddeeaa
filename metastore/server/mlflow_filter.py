"""MLflow's `search_runs` filter strings and order-by clauses, translated to the query
language (not evaluated here: the translated text is compiled and run like any query).

MLflow's grammar is a conjunction of comparisons:

    metrics.rmse < 55 AND params.alpha = '0.5' AND tags."mlflow.user" LIKE 'ann%'
    attributes.status = 'FINISHED' AND run_name ILIKE '%lr%' AND attributes.run_id IN ('a', 'b')

Params keep metastore's typing: `params.alpha = '0.5'` compares the number 0.5 when the
text is a number (`infer_value`), so `params.alpha > '0.1'` is a numeric comparison.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from metastore.errors import InvalidValue
from metastore.importers.values import infer_value

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.|'')*')
    | (?P<dq>"(?:[^"\\]|\\.)*")
    | (?P<bq>`(?:[^`]|``)*`)
    | (?P<op><=|>=|!=|<>|==|=|<|>)
    | (?P<punct>[(),.])
    | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w]))
    | (?P<word>[A-Za-z_][\w\-/:]*)
    )""",
    re.X,
)

#: MLflow run attributes → query-language run attributes.
ATTRIBUTES = {
    "run_id": "id",
    "run_name": "name",
    "status": "status",
    "start_time": "started",
    "end_time": "ended",
    "user_id": "user",
    "artifact_uri": None,
    "lifecycle_stage": None,
}
PREFIXES = {
    "metric": "metrics", "metrics": "metrics",
    "param": "params", "params": "params", "parameter": "params", "parameters": "params",
    "tag": "tags", "tags": "tags",
    "attribute": "attributes", "attributes": "attributes", "attr": "attributes", "run": "attributes",
}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise InvalidValue(f"cannot parse the filter at: {text[pos:pos + 30]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _unquote(kind: str, raw: str) -> str:
    if kind == "string":
        return raw[1:-1].replace("''", "'").replace("\\'", "'").replace('\\"', '"')
    if kind == "dq":
        return raw[1:-1].replace('\\"', '"')
    if kind == "bq":
        return raw[1:-1].replace("``", "`")
    return raw


def _name(key: str) -> str:
    return "`" + key.replace("`", "``") + "`"


def _string(value: str) -> str:
    return json.dumps(value)


def _literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return _string(str(value))


def _like_regex(pattern: str) -> str:
    out = []
    for ch in pattern:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return "^" + "".join(out) + "$"


def _like_glob(pattern: str) -> str:
    if "*" in pattern or "?" in pattern:
        raise InvalidValue("an ILIKE pattern with '*' or '?' cannot be translated")
    return pattern.replace("%", "*").replace("_", "?")


def _time(ms) -> str:
    try:
        t = datetime.fromtimestamp(float(ms) / 1000, UTC)
    except (TypeError, ValueError, OverflowError) as e:
        raise InvalidValue(f"a time is milliseconds since the epoch, got {ms!r}") from e
    return _string(t.strftime("%Y-%m-%d %H:%M:%S.%f"))


def _field(tokens, i) -> tuple[str, str, int]:
    """(kind, key, next index): kind is metrics/params/tags/attributes."""
    kind, raw = tokens[i]
    if kind == "word" and "." not in raw and i + 2 < len(tokens) and tokens[i + 1] == ("punct", "."):
        prefix = PREFIXES.get(raw.lower())
        if prefix is None:
            if raw.lower() in ("dataset", "datasets"):
                raise InvalidValue("filters on datasets are not supported by metastore's MLflow API")
            raise InvalidValue(f"unknown filter entity {raw!r} (metrics, params, tags, attributes)")
        kkind, kraw = tokens[i + 2]
        key = _unquote(kkind, kraw)
        j = i + 3
        # an unquoted dotted key: tags.mlflow.user
        while kkind == "word" and j + 1 < len(tokens) and tokens[j] == ("punct", ".") and tokens[j + 1][0] == "word":
            key += "." + tokens[j + 1][1]
            j += 2
        return prefix, key, j
    if kind == "word":
        word = raw
        j = i + 1
        while j + 1 < len(tokens) and tokens[j] == ("punct", ".") and tokens[j + 1][0] in ("word", "dq", "bq", "string"):
            word += "." + _unquote(*tokens[j + 1])
            j += 2
        head, _, rest = word.partition(".")
        if rest and head.lower() in PREFIXES:
            return PREFIXES[head.lower()], rest, j
        if head.lower() in ("dataset", "datasets"):
            raise InvalidValue("filters on datasets are not supported by metastore's MLflow API")
        return "attributes", word, j
    if kind in ("dq", "bq"):
        return "attributes", _unquote(kind, raw), i + 1
    raise InvalidValue(f"expected a field name in the filter, got {raw!r}")


#: MLflow experiment attributes → query-language experiment attributes.
EXPERIMENT_ATTRIBUTES = {
    "name": "name",
    "experiment_id": None,
    "creation_time": "created",
    "last_update_time": None,
}


def _attribute(key: str, attributes: dict) -> str:
    if key not in attributes:
        raise InvalidValue(
            f"unknown attribute {key!r}", hint="one of: " + ", ".join(k for k, v in attributes.items() if v)
        )
    target = attributes[key]
    if target is None:
        raise InvalidValue(f"filtering on attribute {key!r} is not supported by metastore's MLflow API")
    return target


def _value(tokens, i):
    if i >= len(tokens):
        raise InvalidValue("the filter ends where a value was expected")
    kind, raw = tokens[i]
    if kind == "number":
        return (float(raw) if any(c in raw for c in ".eE") else int(raw)), i + 1
    if kind in ("string", "dq"):
        return _unquote(kind, raw), i + 1
    if kind == "word" and raw.lower() in ("true", "false"):
        return raw.lower() == "true", i + 1
    raise InvalidValue(f"expected a value in the filter, got {raw!r}")


def _convert(kind: str, key: str, value, attributes: dict = ATTRIBUTES):
    """(name in the query language, value adapted to how metastore stores it)."""
    if kind == "metrics":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InvalidValue(f"metric {key!r} is compared with a number, got {value!r}")
        return f"metrics.{_name(key)}", value
    if kind == "params":
        return f"params.{_name(key)}", infer_value(value) if isinstance(value, str) else value
    if kind == "tags":
        return f"tags.{_name(key)}", str(value)
    target = _attribute(key, attributes)
    if target == "status" and isinstance(value, str):
        return target, value.lower()
    if target in ("started", "ended", "created"):
        return target, ("time", value)
    return target, value


def _render(value) -> str:
    if isinstance(value, tuple) and value[0] == "time":
        return _time(value[1])
    return _literal(value)


def translate_filter(text: str | None, attributes: dict = ATTRIBUTES) -> list[str]:
    """The conditions (query-language text, to be joined with `and`) of an MLflow filter."""
    if not text or not text.strip():
        return []
    tokens = _tokens(text)
    conditions: list[str] = []
    i = 0
    while i < len(tokens):
        kind, key, i = _field(tokens, i)
        if i >= len(tokens):
            raise InvalidValue(f"the filter ends after {key!r}: expected a comparison")
        tkind, op = tokens[i]
        op_word = op.upper() if tkind == "word" else op
        if op_word == "NOT" and i + 1 < len(tokens) and tokens[i + 1][1].upper() in ("IN", "LIKE", "ILIKE"):
            op_word = "NOT " + tokens[i + 1][1].upper()
            i += 1
        elif op_word == "IS":
            negate = i + 1 < len(tokens) and tokens[i + 1][1].upper() == "NOT"
            j = i + 2 if negate else i + 1
            if j >= len(tokens) or tokens[j][1].upper() != "NULL":
                raise InvalidValue("expected NULL after IS")
            name, _ = _convert(kind, key, 0 if kind == "metrics" else "", attributes)
            conditions.append(f"{name} is {'not ' if negate else ''}null")
            i = j + 1
            i = _and(tokens, i)
            continue
        i += 1
        if op_word in ("IN", "NOT IN"):
            if i >= len(tokens) or tokens[i] != ("punct", "("):
                raise InvalidValue(f"expected '(' after {op_word}")
            i += 1
            values = []
            while True:
                v, i = _value(tokens, i)
                values.append(v)
                if i < len(tokens) and tokens[i] == ("punct", ","):
                    i += 1
                    continue
                if i < len(tokens) and tokens[i] == ("punct", ")"):
                    i += 1
                    break
                raise InvalidValue(f"expected ',' or ')' in the {op_word} list")
            converted = [_convert(kind, key, v, attributes) for v in values]
            name = converted[0][0]
            items = ", ".join(_render(v) for _, v in converted)
            conditions.append(f"{name} {'not in' if op_word == 'NOT IN' else 'in'} ({items})")
        elif op_word in ("LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"):
            v, i = _value(tokens, i)
            if not isinstance(v, str):
                raise InvalidValue(f"{op_word} needs a string pattern")
            name, _ = _convert(kind, key, "", attributes)
            if name in ("started", "ended", "created") or kind == "metrics":
                raise InvalidValue(f"{op_word} compares text, not {key!r}")
            neg = op_word.startswith("NOT ")
            if op_word.endswith("ILIKE"):
                conditions.append(f"{name} {'not like' if neg else 'like'} {_string(_like_glob(v))}")
            else:
                conditions.append(f"{name} {'!~' if neg else '~'} {_string(_like_regex(v))}")
        elif tkind == "op":
            v, i = _value(tokens, i)
            name, converted = _convert(kind, key, v, attributes)
            sym = {"==": "=", "<>": "!="}.get(op, op)
            conditions.append(f"{name} {sym} {_render(converted)}")
        else:
            raise InvalidValue(f"unsupported comparison {op!r} in the filter")
        i = _and(tokens, i)
    return conditions


def _and(tokens, i) -> int:
    if i >= len(tokens):
        return i
    kind, raw = tokens[i]
    if kind == "word" and raw.upper() == "AND":
        if i + 1 >= len(tokens):
            raise InvalidValue("the filter ends with AND")
        return i + 1
    if kind == "word" and raw.upper() == "OR":
        raise InvalidValue("MLflow filters join comparisons with AND only (OR is not MLflow syntax)")
    raise InvalidValue(f"expected AND in the filter, got {raw!r}")


def translate_order_by(clauses) -> list[str]:
    """Query-language `order by` items of MLflow order_by clauses ("metrics.rmse ASC")."""
    out = []
    for clause in clauses or []:
        tokens = _tokens(clause)
        if not tokens:
            continue
        kind, key, i = _field(tokens, 0)
        direction = "asc"
        if i < len(tokens):
            word = tokens[i][1].lower()
            if word not in ("asc", "desc") or i + 1 != len(tokens):
                raise InvalidValue(f"cannot parse order_by clause {clause!r}")
            direction = word
        name, _ = _convert(kind, key, 0 if kind == "metrics" else "")
        out.append(f"{name} {direction}")
    return out
