"""The Locust user: one streaming chat request after another through `SyncStreamDriver`.

Why a plain `User` and not `HttpUser`/`FastHttpUser`: their streaming helpers hold SSE events back
(DESIGN.md §6: a true 100 ms TTFT read as 641 ms), and their timing is not ours. Each user owns one
driver over one transport (one kept-alive connection); the driver stamps bytes, the recorder decides.

What a finished request produces, in this order and without yielding to other greenlets in between (so
a user stopped by Locust never leaves a record without its Locust entry or the reverse):
1. a JSONL record (`records.py`), written at once;
2. one Locust request event: E2E under the target's name (request_type "E2E"), response time in ms; a
   failure's exception text is its error class only, or `cancelled` (a bounded vocabulary: Locust
   groups failures by that text). TTFT and TTFC go to the web UI's own tab (webui.py), never to
   Locust's request statistics, where they would count as requests;
3. the typed wire record (observation.py) for the Prometheus exporter and that tab on the master.
"""

from __future__ import annotations

import random
import time

import gevent
from locust import User, constant, task

from tokenpulse.core.outcomes import ErrorClass
from tokenpulse.core.recorder import StreamResult, failure_result
from tokenpulse.core.request import prepare
from tokenpulse.load.backoff import error_backoff
from tokenpulse.load.cost import request_cost, worst_case_cost
from tokenpulse.load.generations import submit_lookup
from tokenpulse.load.observation import Observation
from tokenpulse.load.session import STOP_MAX_COST, STOP_MAX_REQUESTS, LoadSession, session_for
from tokenpulse.load.structured import StructuredCheck
from tokenpulse.runfolder.records import build_record
from tokenpulse.runfolder.schedule import MEASURE
from tokenpulse.transports.gevent_loop import make_sync_transport
from tokenpulse.transports.gevent_loop.driver import RequestCancelled, SyncStreamDriver

_NS = 1e-9


class RequestFailed(Exception):
    """Carries only the error class, so Locust's failure table has one row per class and target."""


class TokenpulseUser(User):
    """Closed loop by default (the next request as soon as one ends); open loop under the rate shape,
    where each request waits for a scheduled arrival and records how long it waited."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.session: LoadSession = session_for(self.environment)
        s = self.session
        assert s.opts is not None and s.workload is not None and s.config is not None
        self.user_id, self.target = s.next_user()
        self.stream = s.workload.for_user(self.user_id)
        self.driver = SyncStreamDriver(make_sync_transport(s.opts.transport))
        self.timeouts = s.config.load.timeouts.to_timeouts()
        stagger = s.config.load.start_stagger_s
        if stagger > 0 and s.arrivals is None:  # closed loop: spread Locust's spawn batch (config.py)
            gevent.sleep(random.uniform(0.0, stagger))

    def on_stop(self) -> None:
        self.driver.close()

    @task
    def chat(self) -> None:
        s = self.session
        if s.draining or s.stopped.is_set():
            gevent.sleep(0.5)  # nothing more to send; Locust stops us when the shape ends
            return
        if s.budget.exhausted:
            s.begin_drain(STOP_MAX_REQUESTS)  # --max-requests: this process sent its share (bounds.py)
            return
        scheduled_ns = None
        replayed = None
        if s.arrivals is not None:
            arrival = s.arrivals.take_arrival(timeout=0.5)
            if arrival is None:
                return  # no arrival due yet: loop, so draining and stopping are noticed
            scheduled_ns, replayed = arrival
        if not s.budget.claim():
            s.begin_drain(STOP_MAX_REQUESTS)
            return
        if s.budget.exhausted:
            s.begin_drain(STOP_MAX_REQUESTS)  # this is the last one: no user starts another
        target = self.target.target
        planned = self.stream.next_request(target) if replayed is None else self.stream.replay(target, replayed)
        prepared = prepare(target.endpoint.base_url, planned.chat, api_key=self.target.api_key,
                           extra_headers=target.endpoint.headers,
                           want_ground_truth=bool(s.opts and s.opts.ground_truth),
                           provider_names=self.target.provider_names)
        price = target.model.price
        reservation = s.guard.reserve(self.target.key,
                                      worst_case_cost(price, prepared.prompt_tokens_hint, planned.chat.max_tokens))
        if reservation is None:
            s.begin_drain(STOP_MAX_COST)
            return
        queue_wait_s = None if scheduled_ns is None else max(0.0, (time.monotonic_ns() - scheduled_ns) * _NS)
        start_time = time.time()
        s.note_sent(start_time)
        s.in_flight += 1
        result: StreamResult | None = None
        cancelled: RequestCancelled | None = None
        sent_ns = time.monotonic_ns()
        try:
            result = self.driver.run(prepared, self.timeouts, keep_text=planned.keep_text)
        except RequestCancelled as exc:
            # Locust killed this user after the drain (a step lowered the users, or the run ended): the
            # request still gets its record, `cancelled` with the timings it reached; then the user goes.
            cancelled, result = exc, exc.result
        except Exception as exc:  # noqa: BLE001 - the driver classifies transport failures; this is a bug
            # ...which must still give the request its record, its Locust entry and the error backoff:
            # an exception here would skip all three, and the user would loop as fast as it can.
            result = failure_result(sent_ns, time.monotonic_ns(), ErrorClass.PROTOCOL_ERROR,
                                    f"unexpected client error: {type(exc).__name__}: {exc}",
                                    secrets=prepared.secrets)
        finally:
            s.in_flight -= 1
            if result is None:
                # Killed outside the driver's reach (nothing measured): the provider may bill what it
                # generated, which nobody will know, so the guard counts the reservation, as for any
                # request of unknown cost, and stops holding it.
                s.guard.settle(reservation, None)
        cost = request_cost(result, price)
        s.guard.settle(reservation, cost)
        if s.lookups is not None:
            submit_lookup(s.lookups, self.target, result, cost, reservation.amount)
        self._finish(result, planned.turn, planned.input_tokens_target, planned.output_tokens_target,
                     start_time, scheduled_ns, queue_wait_s, cost, planned.check)
        if cancelled is not None:
            raise cancelled
        self.stream.on_result(result)
        if not result.ok and scheduled_ns is None:
            assert s.config is not None, "on_start checked it, and a session never unsets its config"
            gevent.sleep(error_backoff(result, s.config.load.error_backoff_s))

    def _finish(self, result: StreamResult, turn: int, input_target: int, output_target: int, start_time: float,
                scheduled_ns: int | None, queue_wait_s: float | None, cost: float | None,
                check: StructuredCheck | None = None) -> None:
        s = self.session
        assert s.schedule is not None and s.records is not None
        t_s = start_time - s.run_start
        # A request belongs to the step in which it was sent (docs/metrics.md); under an arrival rate the
        # record also keeps when it was scheduled, so offered load can be counted by schedule.
        step, level, phase = s.schedule.locate(t_s)
        target = self.target.target
        record = build_record(
            result, start_time=round(start_time, 6), t_s=round(t_s, 6), user_id=self.user_id, worker=s.worker_label,
            step=step, level=level, phase=phase, users=s.schedule.users_at(t_s),
            endpoint=target.endpoint.name, model=target.model.id, target_provider=target.provider,
            scheduled_t_s=None if scheduled_ns is None else round((scheduled_ns - s.run_start_mono_ns) * _NS, 6),
            queue_wait_s=None if queue_wait_s is None else round(queue_wait_s, 6), turn=turn,
            input_tokens_target=input_target, output_tokens_target=output_target,
            estimated_cost_usd=cost, **(check.record_fields(result) if check is not None else {}),
        )
        s.records.write(record)
        fire = self.environment.events.request.fire
        name = self.target.name
        e2e_ms = (result.e2e_s or 0.0) * 1000.0
        failure = None if result.ok else RequestFailed(
            result.error_class.value if result.error_class else result.outcome.value)
        fire(request_type="E2E", name=name, response_time=e2e_ms, response_length=result.bytes_received,
             exception=failure, context={})
        s.on_request_done(Observation.of(self.target.index, result, cost, queue_wait_s,
                                         step=step if phase == MEASURE else None))
