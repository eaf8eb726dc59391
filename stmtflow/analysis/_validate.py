"""Definition checks: `validate` raises once with every problem, `definition_problems` lists them.

Each problem is one line that names the statement and where it sits, as a path written the way
the definition is: ``S[2]`` is the third top-level statement, ``S[2].For('poll')[0]`` the first
statement of that loop's body, ``S[3].If[1]``/``.ElseIf#1``/``.Else`` the branches of an ``If``,
``S[4].Case#2``/``.Default`` the cases of a ``Switch``, ``S[5].On('paid')`` an event of a
``Wait``. ``docs/validation.md`` lists every check with its message.

The checks of each statement kind are its own (`stmtflow.dsl._kind.Kind.problems`, beside the
statement class); this module walks the tree, asks each kind, and adds the checks that span the
tree: what may stand inside what, and names unique across it.

Example:
    >>> import stmtflow as sf
    >>> for issue in definition_problems(sf.S(sf.Step("a", print), sf.Break())):
    ...     print(issue)
    Break at S[1]: Break must be inside a For of the same thread body
"""

from __future__ import annotations

from collections.abc import Iterator

from stmtflow.dsl._checks import what
from stmtflow.dsl._foreach import ForEach
from stmtflow.dsl._kind import Site, kind_of
from stmtflow.dsl._section import Section
from stmtflow.errors import DefinitionError

__all__ = ["Site", "definition_problems", "sites", "validate"]


def validate(section: object) -> None:
    """Check a definition; raise `DefinitionError` listing every problem at once.

    Args:
        section: what a workflow's ``definition()`` returned (an ``S(...)``).

    Raises:
        DefinitionError: with ``.issues``, one line per problem, when there is any.

    Example:
        >>> import stmtflow as sf
        >>> validate(sf.S(sf.Step("charge", print)))
        >>> try:
        ...     validate(sf.S(sf.Step("", print), sf.Wait("pay")))
        ... except sf.DefinitionError as exc:
        ...     print(*exc.issues, sep="\\n")
        Step '' at S[0]: name must be a non-empty string, got ''
        Wait 'pay' at S[1]: a Wait needs at least one event (On or OnEvent)
    """
    issues = definition_problems(section)
    if issues:
        raise DefinitionError(issues)


def definition_problems(section: object, *, thread_body: bool = False) -> list[str]:
    """Every problem of a definition, one readable line each; empty when it is valid.

    ``thread_body`` checks a thread's body built from its arg (`stmtflow.core._bodies`): a
    ``Join`` there may wait on a group the definition's ``Go`` statements start.

    Example:
        >>> import stmtflow as sf
        >>> definition_problems(sf.S(sf.Step("a", print)))
        []
        >>> definition_problems(sf.S(sf.Step("a", print), sf.Sleep("a", 5)))[0]
        "Sleep 'a' at S[1]: duration must be a non-negative timedelta, got int 5"
    """
    issues: list[str] = []
    if not isinstance(section, Section):
        issues.append(f"the definition must be a Section built with S(...), got {what(section)}")
        if kind_of(section) is None:
            return issues
    owners: dict[str, list[str]] = {}
    reserved: dict[str, str] = {}
    groups: set[str] = set()
    joins: list[tuple[Site, str]] = []
    fanouts: dict[str, Site] = {}
    for site in sites(section):
        issues.extend(f"{site.describe()}: {problem}" for problem in _problems(site))
        kind = kind_of(site.node)
        if kind is None:
            continue
        for name in kind.names(site.node):
            if isinstance(name, str) and name:
                owners.setdefault(name, []).append(site.describe())
        for name in kind.reserved(site.node):
            reserved.setdefault(name, site.describe())
        groups.update(kind.groups(site.node))
        joins.extend((site, group) for group in kind.joins(site.node))
        if isinstance(site.node, ForEach) and isinstance(site.node.name, str):
            fanouts[site.node.name] = site  # its item threads' group (in the main thread)
    issues.extend(
        f"{site.describe()}: no Go starts threads in group {group!r} "
        f"(groups: {', '.join(map(repr, sorted(groups))) or 'none'})"
        for site, group in joins
        if group not in groups and not thread_body
    )
    issues.extend(
        f"{fanouts[group].describe()}: its item threads form group {group!r}, "
        "which a Go names as its group too; rename one"
        for group in sorted(groups & fanouts.keys())
    )
    issues.extend(
        f"duplicate name {name!r}: {', '.join(where)} "
        "(statement and event names share one namespace)"
        for name, where in owners.items()
        if len(where) > 1
    )
    issues.extend(
        f"name {name!r} of {', '.join(owners[name])} is taken by {owner} (its escalation event)"
        for name, owner in reserved.items()
        if name in owners
    )
    return issues


def sites(root: object) -> Iterator[Site]:
    """Every node under ``root`` (``root`` first), depth first, with its path and context.

    Example:
        >>> import stmtflow as sf
        >>> [s.path for s in sites(sf.S(sf.For("poll", True, sf.Step("check", print))))]
        ['S', 'S[0]', "S[0].For('poll')", "S[0].For('poll')[0]"]
    """
    stack = [Site(root, "S")]
    while stack:
        site = stack.pop()
        yield site
        node = site.node
        kind = kind_of(node)
        if kind is None:
            continue
        kids = kind.children(node)
        loop = node if kind.loops else None if kind.starts_thread else site.loop
        thread = node if kind.starts_thread else site.thread
        catch = None if kind.starts_thread else site.catch
        stack.extend(
            Site(
                kid,
                kind.child_path(node, index, kid, site.path),
                node,
                loop,
                thread,
                node if kind.guards and index > 0 else catch,
            )
            for index, kid in reversed(list(enumerate(kids)))
        )


def _problems(site: Site) -> list[str]:
    """What is wrong with one node, given where it is."""
    node, parent = site.node, site.parent
    kind, outer = kind_of(node), kind_of(parent)
    if kind is None:
        return [f"expected {outer.expected if outer else 'a statement'}, got {what(node)}"]
    if outer is not None and outer.holds is not None and not isinstance(node, outer.holds):
        return [outer.holds_message]
    problems: list[str] = []
    if kind.inside is not None and not isinstance(parent, kind.inside):
        problems.append(f"{kind.label} must be inside a {kind.inside.__name__}")
    return problems + kind.problems(node, site)
