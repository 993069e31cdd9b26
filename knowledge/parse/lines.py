"""Split plain text into blocks: fenced code and `$$` math whole, other text as runs of non-blank lines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BlockKind = Literal["text", "fence", "math"]


@dataclass(frozen=True)
class Block:
    start: int  # 1-based line numbers, inclusive
    end: int
    kind: BlockKind
    text: str


def split_blocks(lines: list[str], first_line: int = 1) -> list[Block]:
    """Blocks of `lines`; an unclosed fence or math block runs to the end of the text."""
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped:
            i += 1
            continue
        if stripped.startswith(("```", "~~~", "$$")):
            kind: BlockKind = "math" if stripped.startswith("$$") else "fence"
            marker = "$$" if kind == "math" else stripped[:3]
            j = i
            single_math = kind == "math" and len(stripped) > 2 and stripped.endswith("$$")
            if not single_math:
                j = i + 1
                while (
                    j < len(lines)
                    and not lines[j].strip().startswith(marker)
                    and not (kind == "math" and lines[j].strip().endswith("$$"))
                ):
                    j += 1
                j = min(j, len(lines) - 1)
            blocks.append(Block(first_line + i, first_line + j, kind, "\n".join(lines[i : j + 1])))
            i = j + 1
            continue
        j = i
        while j + 1 < len(lines) and lines[j + 1].strip() and not lines[j + 1].strip().startswith(("```", "~~~", "$$")):
            j += 1
        blocks.append(Block(first_line + i, first_line + j, "text", "\n".join(lines[i : j + 1])))
        i = j + 1
    return blocks
