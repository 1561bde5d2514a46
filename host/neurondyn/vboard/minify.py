"""Shrink MicroPython sources for the micro:bit without changing what they do.

The micro:bit V1 has a 29 KB file system and compiles every module from
source on import, so comments, docstrings and deep indentation cost flash
(and compile time). ``minify`` removes comments, replaces docstrings by ``0``
and indents one space per level -- while keeping every statement on its
original line number, so a board traceback still points at the right line
of the file in firmware/. Text inside ordinary string literals is untouched.
"""
from __future__ import annotations

import ast
import io
import tokenize

_STMT_START = (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, None)


def minify(source: str) -> str:
    """Return ``source`` minified; same number of lines, same program."""
    lines = source.splitlines()
    if not lines:
        return ""
    new = list(lines)
    frozen = set()           # lines inside multi-line string literals: leave alone
    depth = 0
    logical_start = True     # next significant token starts a logical line
    edits = {}               # row -> list of (col_start, col_end, replacement), applied right to left
    indent_of = {}           # row -> indentation depth for rows that start a logical line
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for i, tok in enumerate(tokens):
        ttype, text, (r1, c1), (r2, c2), _ = tok
        if ttype == tokenize.INDENT:
            depth += 1
            continue
        if ttype == tokenize.DEDENT:
            depth -= 1
            continue
        if ttype in (tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER):
            if ttype == tokenize.NEWLINE:
                logical_start = True
            continue
        if ttype == tokenize.COMMENT:
            edits.setdefault(r1, []).append((c1, c2, ""))
            continue
        if logical_start:
            indent_of[r1] = depth
            nxt = tokens[i + 1].type if i + 1 < len(tokens) else None
            if ttype == tokenize.STRING and nxt in (tokenize.NEWLINE, tokenize.COMMENT, tokenize.ENDMARKER):
                # a docstring (or any bare string statement): keep a placeholder statement
                end_col = c2 if r2 == r1 else len(lines[r1 - 1])
                edits.setdefault(r1, []).append((c1, end_col, "0"))
                for row in range(r1 + 1, r2 + 1):
                    new[row - 1] = ""
                    frozen.add(row)
                logical_start = False
                continue
            logical_start = False
        if ttype == tokenize.STRING and r2 > r1:
            frozen.update(range(r1 + 1, r2 + 1))
    for row, changes in edits.items():
        if row in frozen:
            continue
        text = new[row - 1]
        for c1, c2, rep in sorted(changes, reverse=True):
            text = text[:c1] + rep + text[c2:]
        new[row - 1] = text
    out = []
    for row, text in enumerate(new, 1):
        if row in frozen:
            out.append(text)
        elif row in indent_of:
            out.append(" " * indent_of[row] + text.strip())
        else:
            out.append(text.strip())     # continuation lines (inside brackets / after a backslash)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n" if out else ""


class _DropDocstrings(ast.NodeTransformer):
    def _strip(self, node):
        self.generic_visit(node)
        body = [s for s in node.body
                if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        node.body = body
        return node

    visit_Module = visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _strip
    visit_If = visit_For = visit_While = visit_With = visit_Try = _strip


def same_program(a: str, b: str) -> bool:
    """True when two sources parse to the same AST, bare constant statements aside."""
    def norm(src):
        return ast.dump(_DropDocstrings().visit(ast.parse(src)))
    return norm(a) == norm(b)


def compact(source: str) -> str:
    """The smallest equivalent source python-minifier makes for MicroPython.

    Local names become one or two letters (the same few across every file),
    comments and docstrings go, statements share lines. On the micro:bit V1
    this is heap, not only flash: the board compiles every file it runs, the
    whole source of a file run by ``exec`` is read into one block, and every
    distinct name is interned for good (qstrs are never freed). Parameters,
    globals and attributes keep their names (other modules use them).
    Line numbers are not kept: a board traceback points into the compacted
    file (``ndyn flash --hex`` users see the same files the tests ran).
    """
    import python_minifier
    return python_minifier.minify(
        source, rename_locals=True, rename_globals=False, hoist_literals=False,
        remove_literal_statements=True, combine_imports=False, remove_pass=False,
        remove_dead_branches=False, constant_folding=False, remove_object_base=False,
        convert_posargs_to_args=False, remove_explicit_return_none=False,
        remove_builtin_exception_brackets=False, preserve_shebang=False) + "\n"


def minify_checked(source: str, name: str = "<firmware>") -> str:
    """``compact`` where it yields a valid program, else ``minify`` (proved by AST
    comparison), else the original. Inline assembler (``asm_thumb``) is only
    ``minify``-ed: MicroPython's assembler takes one instruction a line."""
    try:
        if "@micropython.asm_thumb" in source:
            raise ValueError("inline assembler")
        small = compact(source)
        ast.parse(small)
        return small
    except Exception:
        pass
    try:
        small = minify(source)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return source
    try:
        if same_program(source, small) and len(small.splitlines()) <= len(source.splitlines()):
            return small
    except SyntaxError:
        pass
    return source


def _names(tree):
    """(ours, api) names of one module: ours = defined by the firmware
    (functions, parameters, assigned names, attributes of ``me``, globals);
    api = names of other objects' attributes, imports and aliases."""
    ours, api = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            ours.add(node.name)
        elif isinstance(node, ast.arg):
            ours.add(node.arg)
        elif isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store):
                ours.add(node.id)
        elif isinstance(node, ast.Global):
            ours.update(node.names)
        elif isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "me":
                ours.add(node.attr)
            else:
                api.add(node.attr)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                api.add(alias.name.split(".")[0])
                if alias.asname:
                    api.add(alias.asname)
            if isinstance(node, ast.ImportFrom) and node.module:
                api.add(node.module.split(".")[0])
    return ours, api


def shorten_names(files: dict, keep=("do", "me")) -> dict:
    """The firmware's own names (functions, parameters, variables, the
    attributes it sets on fwd) renamed to one or two letters, the same in
    every file; API names, builtins and ``keep`` stay.

    On the micro:bit V1 every distinct name a compiled file contains is
    interned for good and costs ~15 bytes of its 9 KB heap; python-minifier
    shortens only local variables. The renaming is by token, over all files
    of an image at once, so fwd's globals and their uses as ``me.name`` in
    the other files stay the same name. Files with inline assembler are left
    alone (their names are instructions and labels).
    """
    import builtins
    import keyword
    trees = {}
    for name, data in files.items():
        if name.endswith(".py"):
            text = data.decode("utf-8") if isinstance(data, bytes) else data
            if "@micropython.asm_thumb" not in text:
                trees[name] = (text, ast.parse(text))
    ours, api, seen = set(), set(), set()
    for text, tree in trees.values():
        o, a = _names(tree)
        ours |= o
        api |= a
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NAME:
                seen.add(tok.string)
    fixed = api | set(dir(builtins)) | set(keyword.kwlist) | set(keep) | {"micropython"}
    rename = sorted(n for n in ours - fixed if len(n) > 1 and not n.startswith("__"))
    taken = seen - set(rename)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + \
              [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    pool = (n for n in letters + [x + y for x in letters for y in letters + list("0123456789")]
            if n not in taken and not keyword.iskeyword(n) and n not in fixed)
    mapping = {n: next(pool) for n in rename}
    out = dict(files)
    for name, (text, _) in trees.items():
        toks = []
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NAME and tok.string in mapping:
                tok = tok._replace(string=mapping[tok.string])
            toks.append(tok)
        new = tokenize.untokenize(toks)
        ast.parse(new)
        out[name] = new.encode("utf-8") if isinstance(files[name], bytes) else new
    return out
