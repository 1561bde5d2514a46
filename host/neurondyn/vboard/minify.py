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


def minify_checked(source: str, name: str = "<firmware>") -> str:
    """``minify`` plus a proof by AST comparison; falls back to the original if unsure."""
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
