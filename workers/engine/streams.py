"""Sampling streams per prompt group, for rollouts whose draws must not depend on the batch around them.

A multi-rank run (parallel.py) generates each rank's groups in one batch, yet a group must draw the same
tokens whichever rank generates it and whatever else is in the batch. GroupStreams gives every group its
own torch.Generator: at each decode step, a group's live rows take their uniforms from their group's
stream, in row order, and how many rows of a group are live depends only on the group's own tokens.
"""

from __future__ import annotations

import torch


class GroupStreams:
    def __init__(self, generators: list[torch.Generator], group_size: int) -> None:
        self.generators, self.group_size = generators, group_size

    def rows(self, rows: torch.Tensor) -> RowDraws:
        """The draws for these original batch rows (ascending), in the order the sampler asks for them."""
        return RowDraws(self, (rows // self.group_size).tolist())


class RowDraws:
    """What sampling.inverse_cdf_sample takes instead of a torch.Generator: one uniform per row."""

    def __init__(self, streams: GroupStreams, groups: list[int]) -> None:
        self.streams, self.groups = streams, groups

    def uniform(self, device: torch.device) -> torch.Tensor:
        """(R, 1) float64 uniforms; the rows of one group come from its stream, as one draw of their count."""
        parts, start = [], 0
        while start < len(self.groups):
            group, end = self.groups[start], start
            while end < len(self.groups) and self.groups[end] == group:
                end += 1
            generator = self.streams.generators[group]
            parts.append(torch.rand(end - start, 1, generator=generator, device=device, dtype=torch.float64))
            start = end
        return torch.cat(parts)
