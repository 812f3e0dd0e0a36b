"""The YAML loader for schedule files: safe, as fast as the installed PyYAML allows, and within limits.

Safe: PyYAML's safe constructor, so ``!!python`` tags are refused and no configuration runs code.
Fast: libyaml's C parser when PyYAML was built with it (several times faster on a large file),
else the pure-Python one; both give every node its line and column. Within limits: a document is
composed into nodes by our composer, which stops at :data:`MAX_COMPOSE_DEPTH` levels of nesting
(deeper, PyYAML's composer overflows Python's stack and libyaml's crashes the process), and
:class:`NodeMeter` measures a node as it would be built, every use of an alias counted again, so
that a few hundred bytes of aliases cannot become gigabytes of Python objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, cast

import yaml
from yaml.composer import Composer, ComposerError
from yaml.error import Mark
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    Event,
    MappingStartEvent,
    NodeEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "TOO_DEEP_TAG",
    "NodeMeter",
    "PythonScheduleLoader",
    "ScheduleLoader",
]

#: Lists and mappings inside each other in one value (``args``, ``kwargs``...): at most this many levels.
MAX_DEPTH: Final = 32
#: YAML nodes in one file, counted as they would be built: an alias counts its whole target again
#: at every use. About what 10 MiB (the size limit) of ordinary jobs holds without aliases.
MAX_NODES: Final = 2_000_000
#: Nesting at which composing stops; the file's own structure (blocks, jobs) takes a few levels
#: above the values that MAX_DEPTH limits, so anything this deep is reported as too deep.
MAX_COMPOSE_DEPTH: Final = 2 * MAX_DEPTH
#: Nesting at which reading the document stops altogether (see _skip_collection).
MAX_PARSE_DEPTH: Final = 1000
#: The tag of the node that stands for a list or mapping nested deeper than MAX_COMPOSE_DEPTH.
TOO_DEEP_TAG: Final = "tag:celery-orchestra,2026:too-deep"

#: What NodeMeter reports as the depth of a node that is too deep to measure, or contains itself.
_UNBOUNDED: Final = 1 << 62


class _DepthLimitedComposer(Composer):
    """PyYAML's composer (placed before the C parser's own) with a bound on nesting."""

    _depth = 0
    # The parser's, which the stubs leave out of Composer.
    get_event: Callable[[], Event]
    check_event: Callable[..., bool]

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        # Exact classes: the C parser's check_event compares classes, it does not use isinstance.
        if not self.check_event(SequenceStartEvent, MappingStartEvent):
            return super().compose_node(parent, index)
        if self._depth >= MAX_COMPOSE_DEPTH:
            return self._skip_collection()
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _skip_collection(self) -> ScalarNode:
        """Consume a too-deep collection's events and stand a TOO_DEEP_TAG node in for it.

        Anchors inside it name the stand-in, so a later alias to one of them is too deep as well,
        not an "undefined alias". Past MAX_PARSE_DEPTH the whole document is refused: parsers
        spend time in proportion to the depth on every token, so a megabyte of ``[`` would take
        hours to skip.
        """
        start: Event = self.get_event()
        stand_in = ScalarNode(TOO_DEEP_TAG, "", cast(Mark, start.start_mark), cast(Mark, start.end_mark))
        level = 1
        event = start
        while True:
            if isinstance(event, NodeEvent) and not isinstance(event, AliasEvent) and event.anchor is not None:
                self.anchors[event.anchor] = stand_in
            if level == 0:
                return stand_in
            event = self.get_event()
            if isinstance(event, CollectionStartEvent):
                level += 1
                if self._depth + level > MAX_PARSE_DEPTH:
                    raise ComposerError(
                        None,
                        None,
                        f"lists and mappings nested more than {MAX_PARSE_DEPTH} levels deep",
                        cast(Mark, event.start_mark),
                    )
            elif isinstance(event, CollectionEndEvent):
                level -= 1


class PythonScheduleLoader(_DepthLimitedComposer, yaml.SafeLoader):
    """The schedule loader on PyYAML's pure-Python parser (when libyaml is not installed)."""

    def __init__(self, text: str) -> None:
        yaml.SafeLoader.__init__(self, text)


if hasattr(yaml, "CSafeLoader"):

    class CScheduleLoader(_DepthLimitedComposer, yaml.CSafeLoader):
        """The schedule loader on libyaml's C parser; our composer is used, not libyaml's."""

        def __init__(self, text: str) -> None:
            yaml.CSafeLoader.__init__(self, text)
            self.anchors: dict[str, Node] = {}

    #: The loader schedule files are read with: libyaml's parser when PyYAML has it.
    ScheduleLoader: type[CScheduleLoader | PythonScheduleLoader] = CScheduleLoader
else:  # pragma: no cover - PyYAML built without libyaml
    ScheduleLoader = PythonScheduleLoader


_COLLECTIONS: Final = (SequenceNode, MappingNode)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    return []


class NodeMeter:
    """The size and depth of nodes as they would be built, each alias expanded; remembered per node.

    Size counts nodes (every use of an alias counts its target again), capped just past
    :data:`MAX_NODES`; depth counts lists and mappings inside each other (a scalar is 0). A node
    that contains itself through an alias, or stands for one too deep to compose, is unboundedly
    deep. Iterative, so neither a long chain of aliases nor deep nesting can overflow the stack.
    """

    def __init__(self) -> None:
        # Only lists and mappings are remembered: scalars, most of a file, measure (1, 0).
        self._measured: dict[int, tuple[int, int]] = {}

    def measure(self, root: Node) -> tuple[int, int]:
        """``(size, depth)`` of ``root``."""
        measured = self._measured
        if not isinstance(root, _COLLECTIONS) or id(root) in measured:
            return self._of(root)
        in_progress: set[int] = set()
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, children_done = stack.pop()
            key = id(node)
            if children_done:
                measured[key] = self._combine(_children(node))
                in_progress.discard(key)
            elif key not in measured and key not in in_progress:  # in progress: it encloses itself (see _of)
                in_progress.add(key)
                stack.append((node, True))
                stack.extend(
                    (child, False)
                    for child in _children(node)
                    if isinstance(child, _COLLECTIONS) and id(child) not in measured
                )
        return measured[id(root)]

    def _of(self, node: Node) -> tuple[int, int]:
        if isinstance(node, _COLLECTIONS):
            # Not measured yet here means it encloses the node being measured: it contains itself.
            return self._measured.get(id(node), (MAX_NODES + 1, _UNBOUNDED))
        return (1, _UNBOUNDED) if node.tag == TOO_DEEP_TAG else (1, 0)

    def _combine(self, children: list[Node]) -> tuple[int, int]:
        size, depth = 1, 0
        measured = self._measured
        for child in children:
            if isinstance(child, _COLLECTIONS):
                child_size, child_depth = measured.get(id(child), (MAX_NODES + 1, _UNBOUNDED))
                size += child_size
                depth = max(depth, child_depth)
            else:
                size += 1
                if child.tag == TOO_DEEP_TAG:
                    depth = _UNBOUNDED
        return min(size, MAX_NODES + 1), min(depth + 1, _UNBOUNDED)

    def deepest(self, root: Node, level: int) -> Node:
        """The node ``level`` levels down the deepest path from ``root`` (or the deepest there is)."""
        self.measure(root)
        node = root
        for _ in range(level - 1):
            children = _children(node)
            if not children:
                break
            node = max(children, key=lambda child: self._of(child)[1])
        return node
