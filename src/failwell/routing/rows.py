"""Per-row fallback (``routes.NAME.fallback: rows``): once tier 1 has failed a batch, each row
is answered by the first later tier that can answer it.

- a model tier gets the rows still unanswered as one sub-batch (the same per-row shape and
  datatype) and answers all of them or none;
- a rules tier gets the same sub-batch, and may answer only some rows: a list with one answer
  per row and ``None`` for each row it cannot answer;
- the cache tier looks each row up by the row's own key: the route's cache key of a batch of
  that one row (``store`` keeps one entry per row when tier 1 answers a batch, so the default
  ``batch`` routes never pay for it);
- a static tier answers every row left.

The answers are put back in row order (``protocols/tensorrows.py``); a part whose names,
datatypes or per-row shapes differ from the rows answered before it does not fit, and its rows
go on to the next tier. The answer says which tier answered each row (``Answer.row_tiers``);
as a whole it is labelled with the last tier used (the lowest quality), and its age is the
oldest cached row's. None of this runs unless the route opted in and tier 1 failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from msgspec.structs import replace

from failwell.config.models import TierKind
from failwell.contracts import Answer, Request
from failwell.errors import AllTiersFailed, FailwellError, TierFailed, TierFailure, UpstreamRefused
from failwell.protocols.tensor import Tensors
from failwell.protocols.tensorrows import RowAssembly, batch_of, rows_of, take
from failwell.routing.tensor_schema import TensorSchema
from failwell.routing.tiers import Tier, TierAnswer

if TYPE_CHECKING:
    from failwell.routing.chain import TierChain

Split = tuple[int, list[str]]  # the batch size, the names of the inputs that carry it
PutRow = Callable[[Request, Tensors], None]


class RowFallback:
    def __init__(self, schema: TensorSchema) -> None:
        self._schema = schema

    def split(self, request: Request) -> Split | None:
        """The batch of ``request`` and the inputs that carry it; None when it has no rows to
        answer one by one (then the chain answers it whole)."""
        inputs = request.inputs
        if type(inputs) is not Tensors:
            return None
        specs = self._schema.inputs or {}
        fixed = {n for n, s in specs.items() if not s.shape or s.shape[0] != -1}
        try:
            rows, batched = batch_of(inputs, fixed)
        except ValueError:
            return None
        return (rows, batched) if rows > 0 else None

    def store(self, request: Request, outputs: Any, put: PutRow) -> None:
        """Hand ``put`` each row of a tier-1 answer with the row of the request it answers
        (for a batch of more than one row whose outputs all carry the batch)."""
        split = self.split(request)
        if split is None or split[0] < 2 or type(outputs) is not Tensors:
            return
        rows, batched = split
        try:
            answered, carried = batch_of(outputs)
        except ValueError:
            return
        if answered != rows or len(carried) != len(outputs):
            return
        inputs = rows_of(request.inputs, rows, batched)  # type: ignore[arg-type]
        stored = rows_of(outputs, rows, carried, copy=True)  # not the upstream's whole buffer
        for row_in, row_out in zip(inputs, stored, strict=True):
            put(replace(request, inputs=row_in), row_out)

    async def run(
        self,
        chain: TierChain,
        request: Request,
        split: Split,
        started: float,
        failures: list[TierFailure],
    ) -> Answer:
        """The batch answered row by row by the tiers after the first."""
        rows = split[0]
        assembly = RowAssembly(rows)
        by_row: list[str | None] = [None] * rows
        pending = list(range(rows))
        last: tuple[int, Tier, TierAnswer] | None = None
        oldest: float | None = None
        for index in range(1, len(chain.tiers)):
            if not pending:
                break
            tier = chain.tiers[index]
            asked = _Rows(chain, request, split, pending, assembly)
            try:
                budget = chain.check(tier, index, request)
                if tier.kind is TierKind.CACHE:
                    got, answered = await asked.one_by_one(index)
                else:
                    got, answered = await asked.together(tier, budget)
            except UpstreamRefused:
                chain.metrics.refused(chain.route, "upstream_refused")
                raise
            except FailwellError as exc:
                failures.append(TierFailure(tier.name, exc.kind, exc.message))
                chain.metrics.fell_back(chain.route, tier.name, exc.kind)
                continue
            for i in answered:
                by_row[i] = tier.name
            chain.metrics.rows_answered(chain.route, tier.name, len(answered))
            pending = [i for i in pending if by_row[i] is None]
            if got.age is not None:
                oldest = got.age if oldest is None else max(oldest, got.age)
            last = (index, tier, got)
        if pending or last is None:
            chain.metrics.refused(chain.route, "all_tiers_failed")
            raise AllTiersFailed(chain.route, failures)
        index, tier, got = last
        latency = chain.clock.now() - started
        chain.metrics.answered(chain.route, tier.name, "ok", latency)
        got.outputs, got.age = assembly.tensors(), oldest
        answer = got.labelled(tier, index, latency, failures)
        answer.row_tiers = [name or "" for name in by_row]
        return answer


class _Rows:
    """One tier asked for the rows of a batch still ``pending``; what it answers goes into
    ``assembly`` (a part that does not fit goes nowhere: its rows stay pending)."""

    def __init__(
        self,
        chain: TierChain,
        request: Request,
        split: Split,
        pending: list[int],
        assembly: RowAssembly,
    ) -> None:
        self.chain, self.request, self.pending, self.assembly = chain, request, pending, assembly
        self.rows, self.batched = split
        self.inputs: Tensors = request.inputs  # type: ignore[assignment]

    async def together(self, tier: Tier, budget: float) -> tuple[TierAnswer, list[int]]:
        """A model, rules or static tier's answer for the pending rows, as one sub-batch."""
        pending, batched = self.pending, self.batched
        request = self.request
        if len(pending) < self.rows:
            request = replace(request, inputs=take(self.inputs, pending, batched))
        got = await tier.answer(request, budget)
        outputs, indices = got.outputs, pending
        if (
            tier.kind is TierKind.RULES
            and isinstance(outputs, list | tuple)
            and _some_none(outputs)
        ):
            if len(outputs) != len(pending):
                raise TierFailed(
                    f"rules answered {len(outputs)} rows for {len(pending)}", "bad_shape"
                )
            keep = [k for k, answer in enumerate(outputs) if answer is not None]
            if not keep:
                raise TierFailed("rules had no answer for any row", "no_answer")
            request = replace(request, inputs=take(request.inputs, keep, batched))  # type: ignore[arg-type]
            outputs, indices = [outputs[k] for k in keep], [pending[k] for k in keep]
        self._add(indices, request, outputs, tier.kind)
        return got, indices

    async def one_by_one(self, index: int) -> tuple[TierAnswer, list[int]]:
        """The cache tier's answer for each pending row, by the key of a batch of that one
        row; the answer returned is the oldest row's. A whole batch is first looked up whole
        (one lookup when the same batch comes again, and what was stored before the route
        answered by rows)."""
        chain, tier = self.chain, self.chain.tiers[index]
        if len(self.pending) == self.rows:
            try:
                got = await tier.answer(self.request, chain.budget(index, self.request))
                self._add(self.pending, self.request, got.outputs, tier.kind)
                return got, self.pending
            except TierFailed:
                pass  # row by row
        rows = rows_of(self.inputs, self.rows, self.batched)
        answered: list[int] = []
        oldest: TierAnswer | None = None
        missed: FailwellError | None = None
        for i in self.pending:
            row = replace(self.request, inputs=rows[i])
            try:
                got = await tier.answer(row, chain.budget(index, self.request))
                self._add([i], row, got.outputs, tier.kind)
            except TierFailed as exc:
                missed = exc
                continue
            answered.append(i)
            if oldest is None or (got.age or 0.0) > (oldest.age or 0.0):
                oldest = got
        if oldest is None:
            assert missed is not None
            raise TierFailed(f"none of {len(self.pending)} rows: {missed.message}", missed.kind)
        return oldest, answered

    def _add(self, indices: Sequence[int], request: Request, outputs: Any, kind: TierKind) -> None:
        conform = self.chain.conform
        if conform is not None:
            outputs = conform(request, outputs, kind)
        if type(outputs) is not Tensors:
            raise TierFailed("answer is not tensors", "bad_shape")
        try:
            self.assembly.add(indices, outputs)
        except ValueError as exc:
            raise TierFailed(f"answer does not fit the rows before: {exc}", "bad_shape") from None


def _some_none(answers: Sequence[Any]) -> bool:
    return any(answer is None for answer in answers)  # identity: rows may be numpy arrays
