"""Mutants of a module's source: AST edits of the slips people make, and their installation in a live process.

One mutant changes one thing: an arithmetic or comparison operator, a constant (module and class constants
such as a clipping eps, a block size or a threshold, too), a condition negated, a ``raise`` or a warning
removed, a returned value dropped, ``sum`` for ``mean`` (``min`` for ``max``, ``log1p`` for ``log``), a
``dtype=`` argument dropped, an index or a slice bound off by one. Docstrings, annotations, decorators and
default argument values are left alone.

:func:`install` puts a mutant into the imported package without re-importing it: the mutated module is
compiled and the ``__code__`` of each function whose code changed is swapped in place, so every reference
to the function (a task class binding ``check_batch = _validation.check_multiclass_batch``, a test that
imported it by name) runs the mutant. A mutated module or class constant is set on the module (or class)
and in every package module that imported it by name.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib
import inspect
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from types import CodeType, FunctionType, ModuleType
from typing import Any

_BINOP_SWAPS: dict[type, type] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd,
}
_COMPARE_SWAPS: dict[type, type] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
}
_CALL_SWAPS = {
    "sum": "mean", "mean": "sum", "min": "max", "max": "min", "amin": "amax", "amax": "amin",
    "log1p": "log", "expm1": "exp", "any": "all", "all": "any", "clamp_min": "clamp_max",
}
_WARN_NAMES = {"warn", "warn_explicit"}


@dataclass(frozen=True)
class Mutant:
    """One edit of ``module``: the ``index``-th mutation point, at ``line``, in ``scope`` (a qualname or ``NAME=``)."""

    module: str
    index: int
    line: int
    operator: str
    scope: str
    before: str
    after: str
    nth: int = 0

    @property
    def key(self) -> str:
        """A readable identity that survives edits elsewhere in the module (``#n``: the n-th same edit)."""
        name = f"{self.module.rsplit('.', 1)[-1]}:{self.scope}:{self.operator}:{self.before} -> {self.after}"
        return f"{name} #{self.nth + 1}" if self.nth else name


def _is_numeric_expr(node: ast.AST) -> bool:
    """A literal number, or arithmetic on literal numbers (``1 << 20``, ``-1e-7``): a constant worth mutating."""
    if isinstance(node, ast.Constant):
        return (isinstance(node.value, int | float) and not isinstance(node.value, bool)) or node.value in (True, False)
    if isinstance(node, ast.UnaryOp):
        return _is_numeric_expr(node.operand)
    if isinstance(node, ast.BinOp):
        return _is_numeric_expr(node.left) and _is_numeric_expr(node.right)
    return False


def _changed_constant(value: Any) -> Any:
    """The constant a slip would write: ``n + 1`` for an int, twice a float (1.0 for 0.0), the other bool."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    return value * 2 if value else 1.0


class _Points(ast.NodeTransformer):
    """Walk a module, numbering its mutation points; apply the one numbered ``target`` (``None``: list them)."""

    def __init__(self, target: int | None) -> None:
        self.target, self.count, self.scopes = target, 0, []  # type: ignore[var-annotated]
        self.found: list[tuple[int, int, str, str, str, str]] = []
        self.strings_allowed = False

    # --- offering -------------------------------------------------------------------------------------------
    def _offer(self, node: ast.AST, operator: str, new: ast.AST) -> ast.AST:
        index = self.count
        self.count += 1
        if self.target is None:
            scope = self.scopes[0] if self.scopes else "<module>"
            self.found.append((index, getattr(node, "lineno", 0), operator, scope, ast.unparse(node), ast.unparse(new)))
            return node
        return ast.copy_location(new, node) if index == self.target else node

    def _offer_all(self, node: ast.AST, offers: list[tuple[str, ast.AST]]) -> ast.AST:
        result = node
        for operator, new in offers:
            applied = self._offer(node, operator, new)
            if applied is not node:
                result = applied
        return result

    # --- scopes and what is never mutated -------------------------------------------------------------------
    def visit_Module(self, node: ast.Module) -> ast.AST:
        node.body = [self._top_level(stmt, "") for stmt in node.body]
        return node

    def _top_level(self, stmt: ast.stmt, prefix: str) -> ast.stmt:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            self.scopes.append(prefix + stmt.name)
            stmt.body = self._body(stmt.body)
            self.scopes.pop()
        elif isinstance(stmt, ast.ClassDef):
            stmt.body = [self._top_level(s, f"{prefix}{stmt.name}.") for s in stmt.body]
        elif isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None and _is_numeric_expr(stmt.value):
            if isinstance(stmt, ast.AnnAssign) and prefix:  # a dataclass field: its default lives in __init__
                return stmt
            target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
            if isinstance(target, ast.Name):
                self.scopes.append(f"{prefix}{target.id}=")
                stmt.value = self.visit(stmt.value)
                self.scopes.pop()
        return stmt

    def _body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            return body[:1] + [self.visit(s) for s in body[1:]]  # the docstring stays
        return [self.visit(s) for s in body]

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:  # a nested function: its body only
        node.body = self._body(node.body)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        return node

    # --- statements -----------------------------------------------------------------------------------------
    def visit_Raise(self, node: ast.Raise) -> ast.AST:
        return self._offer(node, "remove-raise", ast.Pass())

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        call = node.value
        if isinstance(call, ast.Call):
            name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
            if name in _WARN_NAMES:
                return self._offer(node, "remove-warn", ast.Pass())
        self.generic_visit(node)
        return node

    def visit_Return(self, node: ast.Return) -> ast.AST:
        self.generic_visit(node)
        if node.value is None or (isinstance(node.value, ast.Constant) and node.value.value is None):
            return node
        return self._offer(node, "return-none", ast.Return(value=ast.Constant(None)))

    def _negated(self, node: ast.If | ast.While | ast.IfExp | ast.Assert) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.test, ast.UnaryOp) and isinstance(node.test.op, ast.Not):
            return node  # removing the ``not`` is its own mutant
        new = copy.copy(node)
        new.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
        return self._offer(node, "negate", new)

    visit_If = visit_While = visit_IfExp = _negated  # type: ignore[assignment]

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        swap = _BINOP_SWAPS.get(type(node.op))
        return node if swap is None else self._offer(node, "augassign", ast.AugAssign(node.target, swap(), node.value))

    # --- expressions ----------------------------------------------------------------------------------------
    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        swap = _BINOP_SWAPS.get(type(node.op))
        sides = (node.left, node.right)
        is_string = any(isinstance(s, ast.JoinedStr) or isinstance(getattr(s, "value", None), str) for s in sides)
        if swap is None or is_string:
            return node
        return self._offer(node, "binop", ast.BinOp(node.left, swap(), node.right))

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.strings_allowed = True
        self.generic_visit(node)
        self.strings_allowed = False
        offers: list[tuple[str, ast.AST]] = []
        for i, op in enumerate(node.ops):
            swap = _COMPARE_SWAPS.get(type(op))
            if swap is not None:
                ops = list(node.ops)
                ops[i] = swap()
                offers.append(("compare", ast.Compare(node.left, ops, node.comparators)))
        return self._offer_all(node, offers)

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        swap = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        return self._offer(node, "boolop", ast.BoolOp(swap, node.values))

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        if isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            return self.visit_Constant(node)  # -1e-7 is one constant
        self.generic_visit(node)
        if isinstance(node.op, ast.Not | ast.USub | ast.Invert):
            return self._offer(node, "remove-unary", node.operand)
        return node

    def visit_Constant(self, node: ast.Constant | ast.UnaryOp) -> ast.AST:  # type: ignore[override]
        value = ast.literal_eval(node)
        if isinstance(value, str):
            if not self.strings_allowed:
                return node
            return self._offer(node, "constant", ast.Constant(value + "X"))
        if value is None or not isinstance(value, int | float):
            return node
        return self._offer(node, "constant", ast.Constant(_changed_constant(value)))

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        offers: list[tuple[str, ast.AST]] = []
        if name in _CALL_SWAPS:
            new_func: ast.expr = copy.copy(func)
            if isinstance(new_func, ast.Attribute):
                new_func.attr = _CALL_SWAPS[name]
            else:
                new_func = ast.Name(_CALL_SWAPS[name], ast.Load())
            offers.append(("call", ast.Call(new_func, node.args, node.keywords)))
        for i, keyword in enumerate(node.keywords):
            if keyword.arg == "dtype":
                offers.append(("drop-dtype", ast.Call(func, node.args, node.keywords[:i] + node.keywords[i + 1 :])))
        return self._offer_all(node, offers)

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        self.generic_visit(node)
        index = node.slice
        if isinstance(index, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Load):
            shifted = ast.BinOp(index, ast.Add(), ast.Constant(1))
            return self._offer(node, "index+1", ast.Subscript(node.value, shifted, node.ctx))
        return node

    def visit_Slice(self, node: ast.Slice) -> ast.AST:
        self.generic_visit(node)
        offers: list[tuple[str, ast.AST]] = []
        for bound in ("lower", "upper"):
            value = getattr(node, bound)
            if isinstance(value, ast.Name | ast.Attribute | ast.Call):
                new = copy.copy(node)
                setattr(new, bound, ast.BinOp(value, ast.Add(), ast.Constant(1)))
                offers.append(("slice+1", new))
        return self._offer_all(node, offers)


@functools.cache
def _source(module: str) -> tuple[str, str]:
    """``(file, source)`` of an importable module (imported, so its file is the one running)."""
    path = importlib.import_module(module).__file__
    assert path is not None
    with open(path, encoding="utf-8") as handle:
        return path, handle.read()


def mutants_of(module: str) -> list[Mutant]:
    """Every mutant of ``module``, in source order."""
    points = _Points(None)
    points.visit(ast.parse(_source(module)[1]))
    seen: Counter[str] = Counter()
    out = []
    for found in points.found:
        mutant = Mutant(module, *found)
        out.append(Mutant(module, *found, nth=seen[mutant.key]))
        seen[mutant.key] += 1
    return out


def mutated_tree(mutant: Mutant) -> ast.Module:
    """The module's AST with ``mutant`` applied."""
    points = _Points(mutant.index)
    tree = points.visit(ast.parse(_source(mutant.module)[1]))
    return ast.fix_missing_locations(tree)


def _codes(code: CodeType) -> Iterator[CodeType]:
    """Every code object a module's code holds (functions, class bodies, methods, nested functions)."""
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield const
            yield from _codes(const)


def _functions(namespace: dict[str, Any], module: str, seen: set[int]) -> Iterator[FunctionType]:
    """Every function defined in ``module`` reachable from ``namespace``: plain, wrapped, methods, properties."""
    for value in list(namespace.values()):
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, type) and value.__module__ == module:
            yield from _functions(dict(vars(value)), module, seen)
            continue
        candidates = [value]
        if isinstance(value, staticmethod | classmethod):
            candidates = [value.__func__]
        elif isinstance(value, property):
            candidates = [f for f in (value.fget, value.fset, value.fdel) if f is not None]
        for candidate in candidates:
            fn = inspect.unwrap(candidate) if callable(candidate) else candidate
            if isinstance(fn, FunctionType) and fn.__module__ == module:
                yield fn


def install(mutant: Mutant) -> int:
    """Put ``mutant`` into the running package; return how many objects changed (0: the same bytecode)."""
    path, _ = _source(mutant.module)
    module = sys.modules[mutant.module]
    tree = mutated_tree(mutant)
    if mutant.scope.endswith("="):
        return _install_constant(module, mutant, tree)
    new_codes = {(c.co_qualname, c.co_firstlineno): c for c in _codes(compile(tree, path, "exec", dont_inherit=True))}
    changed = 0
    for fn in _functions(vars(module), mutant.module, set()):
        new = new_codes.get((fn.__code__.co_qualname, fn.__code__.co_firstlineno))
        if new is not None and new != fn.__code__:
            fn.__code__ = new
            changed += 1
    for value in vars(module).values():
        if hasattr(value, "cache_clear"):
            value.cache_clear()
    return changed


def _install_constant(module: ModuleType, mutant: Mutant, tree: ast.Module) -> int:
    """Set a mutated module or class constant where it is defined and where it was imported by name."""
    *owner_path, name = mutant.scope[:-1].split(".")
    owner: Any = module
    statements = tree.body
    for part in owner_path:
        owner = getattr(owner, part)
        statements = next(s for s in statements if isinstance(s, ast.ClassDef) and s.name == part).body
    statement = next(
        s for s in statements
        if isinstance(s, ast.Assign | ast.AnnAssign)
        and getattr(s.targets[0] if isinstance(s, ast.Assign) else s.target, "id", None) == name
    )
    expression = ast.fix_missing_locations(ast.Expression(statement.value))  # type: ignore[arg-type]
    new = eval(compile(expression, module.__file__ or "", "eval"), vars(module))
    old = getattr(owner, name)
    if new == old and type(new) is type(old):
        return 0
    setattr(owner, name, new)
    changed = 1
    if owner is module:
        package = mutant.module.split(".")[0]
        for other_name, other in list(sys.modules.items()):
            if other_name.startswith(package) and other is not module and vars(other).get(name) is old:
                setattr(other, name, new)
                changed += 1
    return changed
