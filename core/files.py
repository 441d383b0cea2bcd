"""Reading user files (YAML/JSON) with line numbers, validating them against pydantic models with
messages that name file, field and line and suggest a fix, and writing outputs atomically."""

from __future__ import annotations

import contextlib
import difflib
import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from core.errors import UserError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


class DuplicateKey(ValueError):
    def __init__(self, key: str, first: int, again: int) -> None:
        super().__init__(f"key `{key}` appears twice (lines {first} and {again}); YAML keeps only the last: "
                         "remove one")
        self.line = again


def _line_map(node: yaml.Node, path: Loc = (), out: dict[Loc, int] | None = None) -> dict[Loc, int]:
    """Map each key path of a composed YAML document to its 1-based line; a key given twice in one mapping is an
    error (YAML would silently keep the last)."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            if path + (key,) in out:
                raise DuplicateKey(".".join(map(str, path + (key,))), out[path + (key,)], key_node.start_mark.line + 1)
            out[path + (key,)] = key_node.start_mark.line + 1
            _line_map(value_node, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[path + (i,)] = item.start_mark.line + 1
            _line_map(item, path + (i,), out)
    return out


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: ~10× faster


MAX_YAML_NODES = 1_000_000  # values a file may expand to through aliases (answers and configs hold hundreds)


class AliasBomb(ValueError):
    """A YAML document whose aliases expand to more values than any config holds (a "billion laughs" file)."""


def _expanded_size(root: yaml.Node, limit: int = MAX_YAML_NODES) -> int:
    """How many values the document holds once every alias is expanded, counted without expanding (each shared
    node once, with the size of what it stands for); stops at `limit`."""
    size: dict[int, int] = {}
    open_: set[int] = set()  # nodes whose children are being counted: meeting one again is a recursive alias
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in size:
            continue
        children = ([v for pair in node.value for v in pair] if isinstance(node, yaml.MappingNode) else
                    node.value if isinstance(node, yaml.SequenceNode) else [])
        if done:
            size[id(node)] = min(limit + 1, 1 + sum(size.get(id(c), 0) for c in children))
            open_.discard(id(node))
            continue
        if id(node) in open_:
            raise AliasBomb("an alias refers to the value that contains it (a recursive alias)")
        open_.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
    return size[id(root)]


def _parse_yaml(text: str) -> tuple[Any, dict[Loc, int]]:
    """One safe parse giving both the data and the key-path → line map."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        if _expanded_size(node) > MAX_YAML_NODES:
            raise AliasBomb(f"its aliases (*name) expand to more than {MAX_YAML_NODES:,} values (a \"billion "
                            "laughs\" file); no answers file or config needs that: write the values out")
        return loader.construct_document(node), _line_map(node)
    finally:
        loader.dispose()


def read_structured(path: str | Path, what: str = "file") -> tuple[Any, dict[Loc, int]]:
    """Parse a YAML or JSON file safely. Returns the data and a key-path → line map."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} `{p}` does not exist (or is not a file)")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)  # strict JSON errors; line numbers below come from the YAML composer
            try:
                _, lines = _parse_yaml(text)
            except yaml.YAMLError:
                lines = {}
            return data, lines
        return _parse_yaml(text)
    except DuplicateKey as e:
        raise UserError(f"{p}:{e.line}: {e}") from None
    except AliasBomb as e:
        raise UserError(f"{p}: refused: {e}") from None
    except RecursionError:
        raise UserError(f"{p}: refused: nested more deeply than any answers file or config (or a recursive "
                        "alias)") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{p}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        problem = getattr(e, "problem", None) or str(e)
        raise UserError(f"{where}: invalid YAML: {problem}") from None


def _models_in(ann: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation (plain, Optional, union, list of)."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    out: list[type[BaseModel]] = []
    for a in getattr(ann, "__args__", ()) or ():
        out += _models_in(a)
    return out


def _field_of(model: type[BaseModel], key: str) -> Any:
    for name, f in model.model_fields.items():
        va = f.validation_alias
        names = {name, f.alias} | set(getattr(va, "choices", ()) or ())
        if key in names:
            return f
    return None


def _resolve(model: type[BaseModel], loc: Loc) -> tuple[list[str], Loc]:
    """Keys accepted where the last element of `loc` sits, and `loc` as the user wrote it
    (union tags that pydantic inserts, such as `lora` in `method.lora.lora_r`, are dropped)."""
    candidates: list[type[BaseModel]] = [model]
    shown: list[str | int] = []
    for part in loc[:-1]:
        if isinstance(part, int):
            shown.append(part)
            continue
        field = next((f for c in candidates if (f := _field_of(c, part)) is not None), None)
        if field is not None:
            shown.append(part)
            candidates = _models_in(field.annotation)
            continue
        tagged = [c for c in candidates if "name" in c.model_fields and c.model_fields["name"].default == part]
        if tagged:  # a discriminated-union tag: not something the user typed
            candidates = tagged
            continue
        candidates = []
    names: list[str] = []
    for c in candidates:
        for name, f in c.model_fields.items():
            names += [name, *([f.alias] if f.alias else []),
                      *[x for x in getattr(f.validation_alias, "choices", ()) or () if isinstance(x, str)]]
    return names, tuple(shown) + loc[-1:]


def _dotted(loc: Loc) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))


def format_validation_error(
    err: ValidationError, model: type[BaseModel], source: str, lines: dict[Loc, int]
) -> str:
    msgs = []
    for e in err.errors():
        loc: Loc = tuple(e["loc"])
        known, user_loc = _resolve(model, loc) if loc else ([], ())
        field = _dotted(user_loc)
        line = None
        for i in range(len(user_loc), 0, -1):
            if user_loc[:i] in lines:
                line = lines[user_loc[:i]]
                break
        where = f"{source}:{line}" if line else source
        if e["type"] == "extra_forbidden":
            key = str(loc[-1])
            hint = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
            fix = f", did you mean `{hint[0]}`?" if hint else " (remove it; see the schema for allowed keys)"
            msgs.append(f"{where}: unknown key `{field}`{fix}")
        elif e["type"] == "missing":
            msgs.append(f"{where}: missing required key `{field}`")
        elif not loc:
            msgs.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
        else:
            got = e.get("input")
            got_s = "" if isinstance(got, dict | list) else f" (got {json.dumps(got, default=str)})"
            msgs.append(f"{where}: `{field}`: {e['msg']}{got_s}")
    return "\n".join(msgs)


def validate(model: type[M], data: Any, source: str, lines: dict[Loc, int] | None = None) -> M:
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of keys to values at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise UserError(format_validation_error(e, model, source, lines or {})) from None


def load_model_file(model: type[M], path: str | Path, what: str = "file", overrides: list[str] | None = None) -> M:
    """Read and validate a file; `overrides` are `dotted.key=value` strings applied first (values read as YAML:
    numbers, booleans, lists), validated like the file itself."""
    data, lines = read_structured(path, what)
    source = str(path)
    if overrides:
        data = apply_overrides(data, overrides, source)
        source += " (with " + ", ".join(o.split("=", 1)[0] for o in overrides) + " overridden)"
    return validate(model, data, source, lines)


def read_json(path: str | Path, what: str) -> Any:
    """A JSON file's value; a missing or unreadable file is exit 2 naming it and the reason."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} `{p}` does not exist")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{what} `{p}` is not JSON ({e})") from None


def apply_overrides(data: Any, overrides: list[str], source: str) -> dict:
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of keys to values at the top level")
    data = json.loads(json.dumps(data))  # a deep copy of plain data
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = [k for k in key.strip().split(".") if k]
        if not sep or not parts:
            raise UserError(f"override `{item}`: write KEY=VALUE with a dotted key, e.g. training.learning_rate=1e-4")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise UserError(f"override `{item}`: the value is not valid YAML ({getattr(e, 'problem', e)})") from None
        node = data
        for k in parts[:-1]:
            if not isinstance(node.setdefault(k, {}), dict):
                raise UserError(f"override `{item}`: `{k}` is a value, not a section")
            node = node[k]
        node[parts[-1]] = value
    return data


def finite_json(data: Any) -> Any:
    """`data` with every NaN or infinite float replaced by None (JSON null): Python's json writes them as bare
    `NaN`/`Infinity`, which no JSON parser but Python's reads."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_json(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite_json(v) for v in data]
    return data


def json_text(data: Any, **kw) -> str:
    """Strict JSON (non-finite numbers as null, never bare NaN) of plain data."""
    return json.dumps(finite_json(data), allow_nan=False, **kw)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@dataclass(frozen=True)
class Replace:
    """Whether a command may replace a file that already exists with other content (a file the user may have
    written or edited): `force` (--force), or a yes typed on a terminal (`ask`, called with the question)."""

    force: bool = False
    ask: Callable[[str], bool] | None = None
    hint: str = "pass --force to replace it, or write somewhere else"


def check_replace(path: str | Path, content: str | bytes, replace: Replace) -> None:
    """UserError when `path` exists with content other than `content` and neither --force nor a yes allows
    replacing it (the same content again is no loss)."""
    p = Path(path)
    if replace.force or not p.exists():
        return
    new = content.encode("utf-8") if isinstance(content, str) else content
    try:
        if p.is_file() and p.read_bytes() == new:
            return
    except OSError:
        pass
    if replace.ask is not None and replace.ask(f"{p} exists and would change. Replace it?"):
        return
    raise UserError(f"{p} already exists with other content (comments or values the new file would lose); "
                    f"it was left as it is: {replace.hint}")


def atomic_write(path: str | Path, content: str | bytes, replace: Replace | None = None) -> Path:
    """Write via a temp file in the same folder and rename, so readers never see half a file. With `replace`,
    an existing file with other content is only replaced as that policy allows (check_replace)."""
    p = Path(path)
    if replace is not None:
        check_replace(p, content, replace)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as e:
        raise write_error(p, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results keep the user's umask like other files
        os.replace(tmp, p)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise write_error(p, e) from None
        raise
    return p


def write_error(p: Path, e: OSError) -> Exception:
    """The error to raise when `p` cannot be written: a full disk is a runtime failure (exit 1; the old file, if
    any, is untouched), a path that cannot hold a file is bad input (exit 2); both name the file and the fix."""
    import errno

    from core.errors import RuntimeFailure

    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return RuntimeFailure(f"cannot write {p}: {e.strerror or 'no space left on the device'}; free some space "
                              "(or write elsewhere) and run the command again (the old file, if any, is unchanged)")
    blocker = next((a for a in [p.parent, *p.parent.parents] if a.exists() and not a.is_dir()), None)
    why = f"`{blocker}` is a file, not a folder" if blocker else (e.strerror or str(e)).lower()
    return UserError(f"cannot write {p}: {why}; choose a path in a folder you can write to")


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def comment_yaml(text: str, comments: dict[str, str]) -> str:
    """YAML text with `# comment` lines above the keys named by dotted path (block-style mappings)."""
    out: list[str] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        if stripped and not stripped.startswith(("- ", "#")) and ":" in stripped:
            key = stripped.split(":", 1)[0].strip().strip("'\"")
            while stack and stack[-1][0] >= indent:
                stack.pop()
            dotted = ".".join([k for _, k in stack] + [key])
            for part in comments.get(dotted, "").splitlines():
                out.append(" " * indent + "# " + part)
            stack.append((indent, key))
        out.append(line)
    return "\n".join(out) + "\n"


def write_model(path: str | Path, model: BaseModel, header: str | None = None,
                comments: dict[str, str] | None = None, replace: Replace | None = None) -> Path:
    """Write a pydantic model as YAML (or JSON for *.json), atomically (`replace`: see atomic_write)."""
    return atomic_write(path, model_text(path, model, header, comments), replace)


def model_text(path: str | Path, model: BaseModel, header: str | None = None,
               comments: dict[str, str] | None = None) -> str:
    """The text `write_model` writes."""
    data = model.to_file_dict() if hasattr(model, "to_file_dict") else model.model_dump(mode="json", exclude_none=True)
    if str(path).endswith(".json"):
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    body = dump_yaml(data)
    return (f"# {header}\n" if header else "") + (comment_yaml(body, comments) if comments else body)


def rules_dir() -> Path:
    """The decision data: rules/ beside the packages in a checkout, core/_rules inside an installed wheel."""
    core = Path(__file__).resolve().parent
    for cand in (core / "_rules", core.parent / "rules"):
        if cand.is_dir():
            return cand
    raise FileNotFoundError("the rules/ folder is missing from this installation")
