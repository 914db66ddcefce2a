"""`--max-cost`: stop a load test *before* its estimated spend passes a cap.

Why reservations: a request is paid for once sent, whatever happens next, and its price is only known
when its usage arrives at the end. Checking the spend after the fact always overshoots by everything in
flight. So each request reserves its worst case before it is sent, and the reservation is replaced by the
actual cost when it ends. A request whose reservation does not fit is not sent, and the run drains and
stops; spent + reserved never exceeds the cap.

The worst case is prompt estimate x prompt price + max_tokens x completion price, scaled up by the
largest overrun seen for that target (actual cost / that estimate, once a request has finished): a
provider that charges more than the configured price, or prompts that tokenize into more tokens than
the estimate, raise every later reservation in proportion, a long prompt included, and the
reservations of the target's requests still in flight. It is never less than the largest cost seen
for the target. Without a configured price, and before the first actual cost of a target, the worst
case is unknown (0): the cap then holds only from the first finished request on (docs/load-testing.md
says so); the same goes for the first requests to a provider that charges more than the configured
price.

Actual cost of a request: the server's `usage.cost` when present (OpenRouter sends it), else usage x the
configured price, else unknown (None). A request whose usage was invalid (`usage_invalid`: NaN, negative,
absurdly large...) has an unknown cost: its reservation is kept as spent, and no estimate from its
estimated tokens is put in its place. A cost that is not a finite non-negative number never reaches the
totals either way: NaN would make every later comparison with the cap false, and the cap would no
longer hold.

Billed failures: a request that failed mid-stream has no `usage.cost`, yet OpenRouter may bill what it
generated. Its cost is settled as unknown (its reservation counts) or as its price estimate; when the
`/generation` lookup of it returns a `total_cost` (load/generations.py, seconds later), `correct_spend`
puts that in place of what was counted, and a cap that the correction passes stops the run.

Distributed runs: each worker gets an equal share of the cap (the master splits it by the number of
workers at the start); when one worker's share is exhausted, the master drains and stops every worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tokenpulse.config import Price
from tokenpulse.core.outcomes import ErrorClass
from tokenpulse.core.recorder import StreamResult
from tokenpulse.core.usage import finite_cost

#: Failures that mean the server never started generating: nothing is billed (OpenRouter does not
#: charge for requests refused with an HTTP error).
_UNBILLED = frozenset({ErrorClass.CLIENT_ERROR, ErrorClass.RATE_LIMITED, ErrorClass.SERVER_ERROR,
                       ErrorClass.CONNECT_ERROR, ErrorClass.TIMEOUT_CONNECT})


def request_cost(result: StreamResult, price: Price | None) -> float | None:
    """Estimated spend of one request: `usage.cost`, else usage x price, else None (unknown).

    A request refused before any token (HTTP error, no connection) costs 0; one whose usage was invalid
    costs an unknown amount (None), whatever its price."""
    if result.usage_invalid:
        return None
    if result.cost_usd is not None:
        return finite_cost(result.cost_usd)
    if result.error_class in _UNBILLED and result.ttft_s is None:
        return 0.0
    if price is None:
        return None
    return finite_cost(price.cost(result.prompt_tokens, result.output_tokens))


def worst_case_cost(price: Price | None, prompt_tokens: int | None, max_tokens: int | None) -> float:
    """Upper bound of a request's cost from its prompt estimate and max_tokens (0 without a price)."""
    if price is None:
        return 0.0
    return price.cost(prompt_tokens or 0, max_tokens or 0)


@dataclass(slots=True, eq=False)
class Reservation:
    key: str
    amount: float
    #: The price-based estimate the amount was scaled from (0 without a price).
    estimate: float = 0.0


@dataclass(slots=True)
class CostGuard:
    """Budget of one process. `cap_usd=None` means unlimited (it still totals the spend)."""

    cap_usd: float | None
    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    exhausted: bool = False
    largest_seen: dict[str, float] = field(default_factory=dict)
    #: Per target, the largest actual cost / price-based estimate seen (1 until a request costs more).
    overrun: dict[str, float] = field(default_factory=dict)
    #: Per target, the reservations of requests still in flight.
    in_flight: dict[str, set[Reservation]] = field(default_factory=dict)

    def _worst_case(self, key: str, estimate_usd: float) -> float:
        return max(estimate_usd * self.overrun.get(key, 1.0), self.largest_seen.get(key, 0.0))

    def reserve(self, key: str, worst_case_usd: float) -> Reservation | None:
        """Reserve a request's worst case; None (and `exhausted`) when it would pass the cap."""
        amount = self._worst_case(key, worst_case_usd)
        if self.cap_usd is not None and (self.exhausted or self.spent_usd + self.reserved_usd + amount > self.cap_usd):
            self.exhausted = True
            return None
        self.reserved_usd += amount
        reservation = Reservation(key, amount, worst_case_usd)
        self.in_flight.setdefault(key, set()).add(reservation)
        return reservation

    def settle(self, reservation: Reservation, actual_usd: float | None) -> None:
        """Replace the reservation by the actual cost (unknown cost: the reservation is kept as spent).

        A cost above what was reserved (a provider billing more than the configured price, no price at
        all) raises the target's worst case, and with it the reservations of its requests still in
        flight: they were made before anyone knew, and would otherwise let the next requests in as if
        they were cheaper than they will be. A cost that is not a finite non-negative number is unknown."""
        actual_usd = finite_cost(actual_usd)
        self._forget(reservation)
        spent = reservation.amount if actual_usd is None else actual_usd
        self.spent_usd += spent
        if actual_usd is None:
            return
        key = reservation.key
        raised = False
        if actual_usd > self.largest_seen.get(key, 0.0):
            self.largest_seen[key] = actual_usd
            raised = True
        if reservation.estimate > 0 and actual_usd > reservation.estimate * self.overrun.get(key, 1.0):
            # A part in a billion more, so that float rounding never leaves a later reservation a hair
            # under the cost it is meant to bound.
            self.overrun[key] = actual_usd / reservation.estimate * (1 + 1e-9)
            raised = True
        if raised:
            for pending in self.in_flight.get(key, ()):
                amount = self._worst_case(key, pending.estimate)
                if amount > pending.amount:
                    self.reserved_usd += amount - pending.amount
                    pending.amount = amount

    def _forget(self, reservation: Reservation) -> None:
        self.reserved_usd = max(0.0, self.reserved_usd - reservation.amount)
        pending = self.in_flight.get(reservation.key)
        if pending is not None:
            pending.discard(reservation)


def correct_spend(guard: CostGuard, counted_usd: float, actual_usd: float | None) -> None:
    """A cost learnt after the request was settled (OpenRouter's `/generation` `total_cost` of a
    request that failed mid-stream without `usage.cost`, but was billed): it replaces what the guard
    counted for it (its estimate, or its reservation when the cost was unknown), so `--max-cost`
    holds for billed failures too. Not a finite non-negative number: nothing changes."""
    actual = finite_cost(actual_usd)
    if actual is None:
        return
    guard.spent_usd = max(0.0, guard.spent_usd + actual - counted_usd)
    if guard.cap_usd is not None and guard.spent_usd + guard.reserved_usd > guard.cap_usd:
        guard.exhausted = True
