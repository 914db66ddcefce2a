"""How many concurrent 50 tokens/s streams one Locust worker process carries with client lag p99 < 5 ms,
and what guidellm / aiperf measure against the same mock, next to ours and the mock's ground truth.

Why: a load generator that falls behind its streams stamps tokens late and reports the target slower
than it is (DESIGN.md §6). This runs the real path, `tokenpulse load` (one Locust process: users,
SyncStreamDriver, the raw-socket transport (Locust's default), the recorder, per-request JSONL), as a
concurrency sweep against the mock in its own process, with ground truth on (`X-Tokenpulse-Truth: 1`): the mock
stamps every chunk with its send time on the same CLOCK_MONOTONIC, so per token event

- client lag = receipt time (the recorder's stamp) - the mock's send time;
- TTFT error = our TTFT - the mock's own TTFT for that request (request receipt -> first token sent).

Farm: one fault-free provider, TTFT 100 ms exactly, 50 tokens/s, 150 tokens, 1 token per chunk, 4,096
slots. With two or more cores the mock is pinned to core 1 and the load generator (and each peer) to
core 0, as in DESIGN.md §6. Peers (`guidellm`, `aiperf`) must be installed in their own venvs
(`--install-peers` does `python -m venv /tmp/peer-NAME && pip install NAME`); they need a Hugging Face
tokenizer, and the hub is unreachable here, so a small word-level tokenizer is built locally.

    .venv/bin/python benchmarks/locust_capacity.py                     # about 3-4 minutes
    .venv/bin/python benchmarks/locust_capacity.py --levels 128,512 --peers none
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tokenpulse.core.stats import percentile
from tokenpulse.mock import MockServerProcess, dump_farm
from tokenpulse.mock.farm import farm_from_data
from tokenpulse.runfolder.records import iter_jsonl

MODEL = "bench/paced-stream"
PROVIDER = "bench"
TOKENS = 150
RATE = 50.0
TRUTH_TTFT_MS = 100.0
LAG_LIMIT_S = 0.005
PEERS = ("guidellm", "aiperf")

_TOKENIZER_SCRIPT = r"""
import sys
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
vocab = {"[UNK]": 0, "[PAD]": 1, "<s>": 2, "</s>": 3}
for i in range(4000):
    vocab[f"w{i}"] = len(vocab)
for w in "the of and to in is was for on that with as by at from lorem ipsum dolor sit amet".split():
    vocab.setdefault(w, len(vocab))
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>",
                        eos_token="</s>").save_pretrained(sys.argv[1])
"""


def bench_farm_yaml() -> str:
    data = {"seed": 1, "models": {MODEL: {
        "name": "Benchmark stream", "context_length": 8192, "reasoning": False,
        "pricing": {"prompt": 0.1, "completion": 0.1},
        "output_tokens": {"min": TOKENS, "max": TOKENS},
        "providers": {PROVIDER: {"name": "Bench", "profile": {
            "ttft": {"median_ms": TRUTH_TTFT_MS, "p99_ms": TRUTH_TTFT_MS},
            "decode": {"tokens_per_s": RATE, "request_jitter": 0, "chunk_jitter": 0, "tokens_per_chunk": 1},
            "capacity": 4096, "keepalive_ms": 0}}},
    }}}
    return dump_farm(farm_from_data(data, "benchmark farm"))


def pin(pid: int, core: int | None) -> None:
    if core is not None:
        os.sched_setaffinity(pid, {core})


class CpuSampler:
    """CPU share (of one core) of a process tree, sampled once a second in a thread."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.samples: list[tuple[float, float]] = []  # (unix time, cpu seconds so far)
        self._seen: dict[int, float] = {}  # last CPU time of every process of the tree, exited ones too
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _cpu(self) -> float:
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            procs = []
        for p in procs:
            try:
                t = p.cpu_times()
                self._seen[p.pid] = t.user + t.system
            except psutil.Error:
                pass
        return sum(self._seen.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self._cpu()))
            self._stop.wait(1.0)

    def start(self) -> CpuSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def share(self, start: float, end: float) -> float | None:
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return None
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


# --------------------------------------------------------------------------------------- ours
def request_period_s() -> float:
    """How long one request of the benchmark farm lasts: TTFT plus the decode of TOKENS tokens."""
    return TRUTH_TTFT_MS / 1000 + TOKENS / RATE


def default_spawn_rate(levels: list[int]) -> float:
    """Users per second such that the largest step's new users start over one request period.

    Why: the mock answers every request in exactly the same time (no jitter), so users that start
    together finish, and start their next request, together for the whole run: a herd. Locust starts
    users in batches once a second, and tokenpulse spreads each batch over that second
    (`load.start_stagger_s`); this rate also spreads the batches over one request period (3.1 s), the
    steady state that real providers' TTFT and decode jitter reach by themselves within a few requests.
    `--spawn-rate 512` (one batch) reproduces the herd."""
    steps = [b - a for a, b in zip([0, *levels], levels, strict=False)]
    return max(steps) / request_period_s()


def run_tokenpulse(base_url: str, levels: list[int], step_s: float, warmup_s: float, work: Path,
                   core: int | None, transport: str, spawn_rate: float, tree: Path = REPO, tag: str = "") -> Path:
    """One `tokenpulse load` sweep from the checkout `tree` (this one, or a --baseline checkout of an earlier
    revision, run with its own package: `monitor` before the rename, `tokenpulse` after)."""
    config = {"endpoints": [{"name": "mock", "base_url": base_url,
                             "models": [{"id": MODEL, "providers": [PROVIDER]}]}],
              "load": {"workload": {"input_tokens_mean": 32, "output_tokens_mean": TOKENS, "fixed_output": True},
                       "timeouts": {"connect_s": 10, "ttft_s": 30, "idle_s": 15, "total_s": 60}}}
    config_py = tree / "tokenpulse" / "config.py"
    if config_py.exists() and "class GenerationLookups" in config_py.read_text(encoding="utf-8"):
        # OpenRouter's /generation lookups (a few per second, off the streams' path) are not what this
        # measures, and a baseline from before them has none: off, so both trees do the same work.
        config["load"]["generations"] = {"max_rate_per_s": 0}
    cfg = work / f"bench{tag}.yaml"
    cfg.write_text(yaml.safe_dump(config), encoding="utf-8")
    out = work / f"locust-run{tag}"
    package = "tokenpulse" if (tree / "tokenpulse" / "__init__.py").exists() else "monitor"
    env = dict(os.environ, PYTHONPATH=str(tree.resolve()))
    cmd = [sys.executable, "-m", package, "load", "--config", str(cfg), "--shape", "sweep",
           "--levels", ",".join(map(str, levels)), "--step-time", f"{step_s:g}", "--warmup", f"{warmup_s:g}",
           "--spawn-rate", f"{spawn_rate:g}", "--ground-truth", "--metrics-port", "0", "--quiet",
           "--transport", transport,
           "--out", str(out)]
    subprocess.run(cmd, cwd=tree, check=True, env=env,
                   preexec_fn=(lambda: pin(0, core)) if core is not None else None)
    return out


def analyse_tokenpulse(out: Path, mock_cpu: CpuSampler) -> list[dict[str, Any]]:
    meta = json.loads((out / "meta.json").read_text())
    start = meta["run_start"]
    rows = []
    records = [r for f in sorted(out.glob("records-*.jsonl")) for r in iter_jsonl(f)]
    health = [h for f in sorted(out.glob("health-*.jsonl")) for h in iter_jsonl(f)]
    for step in meta["schedule"]["steps"]:
        w0, w1 = start + step["start_s"] + step["warmup_s"], start + step["start_s"] + step["duration_s"]
        mine = [r for r in records if r["step"] == step["index"] and r["phase"] == "measure"]
        ok = [r for r in mine if r["outcome"] == "ok"]
        lags = sorted(x for r in ok for x in (r.get("truth_lags_s") or ()))
        ttft_err = sorted(r["ttft_s"] - r["truth_ttft_s"] for r in ok if r.get("truth_ttft_s") is not None)
        ttfts = sorted(r["ttft_s"] for r in ok)
        gaps = sorted(b - a for r in ok for a, b in zip(r["token_times_s"], r["token_times_s"][1:], strict=False))
        cpu = [h["cpu"] for h in health if h.get("cpu") is not None and w0 <= h["time"] <= w1 + 1]
        hub = sorted(x for h in health if w0 <= h["time"] <= w1 + 1 for x in h.get("lags_s") or ())
        rows.append({
            "streams": step["users"], "requests": len(mine), "errors": len(mine) - len(ok),
            "lag_p50_s": percentile(lags, 50), "lag_p99_s": percentile(lags, 99),
            "ttft_p50_s": percentile(ttfts, 50), "ttft_p99_s": percentile(ttfts, 99),
            "ttft_err_p50_s": percentile(ttft_err, 50), "ttft_err_p99_s": percentile(ttft_err, 99),
            "gap_p50_s": percentile(gaps, 50), "gap_p99_s": percentile(gaps, 99),
            "hub_lag_p99_s": percentile(hub, 99), "cpu": statistics.fmean(cpu) if cpu else None,
            "mock_cpu": mock_cpu.share(w0, w1), "events_per_s": len(lags) / (w1 - w0) if w1 > w0 else None,
        })
    return rows


# --------------------------------------------------------------------------------------- peers
def peer_bin(name: str, install: bool) -> Path | None:
    venv = Path(f"/tmp/peer-{name}")
    exe = venv / "bin" / name
    if exe.exists():
        return exe
    if not install:
        return None
    subprocess.run([sys.executable.replace(".venv/bin/python", "") or "python3", "-m", "venv", str(venv)],
                   check=False)
    if not (venv / "bin" / "pip").exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=False)
    proc = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", name], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"{name}: pip install failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return exe if exe.exists() else None


def make_tokenizer(exe: Path, target: Path) -> bool:
    if (target / "tokenizer.json").exists():
        return True
    proc = subprocess.run([str(exe.parent / "python"), "-c", _TOKENIZER_SCRIPT, str(target)], capture_output=True,
                          text=True)
    return proc.returncode == 0


def run_peer(name: str, exe: Path, root_url: str, streams: int, seconds: float, work: Path, tokenizer: Path,
             core: int | None) -> dict[str, Any]:
    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    if name == "guidellm":
        cmd = [str(exe), "run", "--backend",
               f"kind=openai_http,target={root_url},model={MODEL},validate_backend=false",
               "--profile", f"kind=concurrent,streams={streams}",
               "--constraint", f"kind=max_duration,seconds={seconds:g}",
               "--data", f"kind=synthetic_text,prompt_tokens=32,output_tokens={TOKENS}",
               "--tokenizer", f"kind=huggingface_auto,model={tokenizer}",
               "--output", f"kind=json,path={out / 'out.json'}", "--disable-console-interactive"]
    else:
        cmd = [str(exe), "profile", "--model", MODEL, "--url", root_url, "--endpoint-type", "chat", "--streaming",
               "--concurrency", str(streams), "--benchmark-duration", f"{seconds:g}", "--tokenizer", str(tokenizer),
               "--synthetic-input-tokens-mean", "32", "--output-tokens-mean", str(TOKENS),
               "--artifact-dir", str(out / "art"), "--ui-type", "none"]
    with open(out / "log.txt", "w") as log:
        proc = subprocess.Popen(cmd, cwd=out, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=(lambda: pin(0, core)) if core is not None else None)
        sampler = CpuSampler(proc.pid).start()
        t0 = time.time()
        try:
            code = proc.wait(seconds * 4 + 120)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = -9
        sampler.stop()
    cpu = sampler.share(t0 + 5, time.time())  # skip start-up (imports, worker processes)
    result: dict[str, Any] = {"peer": name, "exit": code, "cpu": cpu}
    try:
        if name == "guidellm":
            m = json.loads((out / "out.json").read_text())["benchmarks"][0]["metrics"]
            ttft, itl = m["time_to_first_token_ms"]["successful"], m["inter_token_latency_ms"]["successful"]
            result.update(requests=ttft["count"], ttft_p50_s=ttft["percentiles"]["p50"] / 1000,
                          ttft_p99_s=ttft["percentiles"]["p99"] / 1000, itl_mean_s=itl["mean"] / 1000,
                          itl_p50_s=itl["percentiles"]["p50"] / 1000, itl_p99_s=itl["percentiles"]["p99"] / 1000)
        else:
            d = json.loads((out / "art" / "profile_export_aiperf.json").read_text())
            ttft, itl, icl = d["time_to_first_token"], d["inter_token_latency"], d["inter_chunk_latency"]
            result.update(requests=ttft["count"], ttft_p50_s=ttft["p50"] / 1000, ttft_p99_s=ttft["p99"] / 1000,
                          itl_mean_s=itl["avg"] / 1000, itl_p50_s=icl["p50"] / 1000, itl_p99_s=icl["p99"] / 1000)
    except (OSError, KeyError, IndexError, ValueError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc} (see {out / 'log.txt'})"
    return result


# ---------------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="64,128,256,512,768,1024", help="concurrent streams per step")
    parser.add_argument("--step-time", type=float, default=16.0, help="seconds per level (default 16)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds excluded per level (default 5)")
    parser.add_argument("--peers", default="guidellm,aiperf", help="comma-separated, or none")
    parser.add_argument("--peer-streams", type=int, default=64, help="peers' concurrency (default 64)")
    parser.add_argument("--peer-time", type=float, default=20.0, help="seconds per peer run (default 20)")
    parser.add_argument("--install-peers", action="store_true", help="pip install missing peers into /tmp venvs")
    parser.add_argument("--transport", default="raw", help="sync transport under the driver (default raw)")
    parser.add_argument("--spawn-rate", type=float, help="users started per second (default: the largest step's "
                        "new users over one request period, 3.1 s; see default_spawn_rate)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="a checkout of an earlier revision (git worktree add --detach DIR REV): its sweep "
                             "runs right after this one's against the same mock, --repeat times alternately")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of (this sweep[, baseline sweep])")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    peers = [] if args.peers == "none" else [p.strip() for p in args.peers.split(",") if p.strip()]
    cores = os.sched_getaffinity(0)
    mock_core, client_core = (1, 0) if len(cores) >= 2 and {0, 1} <= cores else (None, None)
    work = Path(tempfile.mkdtemp(prefix="tokenpulse-capacity-"))
    farm = work / "farm.yaml"
    farm.write_text(bench_farm_yaml(), encoding="utf-8")
    results: dict[str, Any] = {"levels": levels, "truth": {"ttft_s": TRUTH_TTFT_MS / 1000, "gap_s": 1 / RATE},
                               "cpu_count": os.cpu_count(), "pinned": mock_core is not None}
    with MockServerProcess(config_path=farm) as srv:
        pin(srv.pid, mock_core)
        mock_cpu = CpuSampler(srv.pid).start()
        started = time.monotonic()
        spawn_rate = args.spawn_rate or default_spawn_rate(levels)
        results["transport"] = args.transport
        results["spawn_rate"] = spawn_rate
        results["rounds"] = []
        for round_no in range(1, args.repeat + 1):
            trees = [("tokenpulse", REPO)] + ([("baseline", args.baseline)] if args.baseline else [])
            row: dict[str, Any] = {"round": round_no}
            for name, tree in trees:
                out = run_tokenpulse(srv.base_url, levels, args.step_time, args.warmup, work, client_core,
                                     args.transport, spawn_rate, tree=tree, tag=f"-{name}-{round_no}")
                row[name] = analyse_tokenpulse(out, mock_cpu)
            results["rounds"].append(row)
        results["tokenpulse"] = results["rounds"][-1]["tokenpulse"]
        results["tokenpulse_seconds"] = time.monotonic() - started
        results["peers"] = []
        for name in peers:
            exe = peer_bin(name, args.install_peers)
            if exe is None:
                results["peers"].append({"peer": name, "error": "not installed (pip install into /tmp/peer-"
                                         f"{name} failed or was not tried; use --install-peers)"})
                continue
            tokenizer = work / "tokenizer"
            if not make_tokenizer(exe, tokenizer):
                results["peers"].append({"peer": name, "error": "could not build a local tokenizer"})
                continue
            results["peers"].append(run_peer(name, exe, srv.root_url, args.peer_streams, args.peer_time, work,
                                             tokenizer, client_core))
        mock_cpu.stop()
    print_results(results, args.peer_streams)
    if args.baseline:
        print_baseline(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    best = max((r["streams"] for r in results["tokenpulse"]
                if r["lag_p99_s"] is not None and r["lag_p99_s"] < LAG_LIMIT_S and not r["errors"]), default=0)
    print(f"\nmost concurrent 50 tok/s streams with client lag p99 < {LAG_LIMIT_S * 1000:g} ms in one Locust "
          f"process: {best}")
    return 0


def print_baseline(results: dict[str, Any]) -> None:
    """Per round and level: this tree against the baseline checkout, run one after the other."""
    print("\nthis tree vs --baseline, per round (CPU share of the Locust process, lag p99, requests)")
    print("round  streams   CPU now / base   ratio   lag p99 now / base      requests now / base")
    for row in results["rounds"]:
        for now, base in zip(row["tokenpulse"], row["baseline"], strict=True):
            ratio = now["cpu"] / base["cpu"] if now["cpu"] and base["cpu"] else None
            print(f"{row['round']:>5}  {now['streams']:>7}   {now['cpu'] or 0:5.0%} / {base['cpu'] or 0:5.0%}   "
                  f"{ratio or 0:5.2f}   {ms(now['lag_p99_s']):>9} / {ms(base['lag_p99_s']):>9}   "
                  f"{now['requests']:>6} / {base['requests']:>6}")


def print_results(results: dict[str, Any], peer_streams: int) -> None:
    print(f"one Locust process (tokenpulse load, {results.get('transport')} transport, spawn rate "
          f"{results.get('spawn_rate', 0):.0f}/s) vs the mock; truth: TTFT {TRUTH_TTFT_MS:g} ms, "
          f"{1000 / RATE:g} ms between tokens, {TOKENS} tokens; pinned: {results['pinned']}")
    head = ("streams", "req", "err", "lag p50", "lag p99", "TTFT p50", "TTFT p99", "TTFT err p50", "TTFT err p99",
            "gap p50", "gap p99", "hub lag p99", "events/s", "gen CPU", "mock CPU", "lag<5ms")
    print("  ".join(f"{h:>12}" for h in head))
    for r in results["tokenpulse"]:
        cells = [str(r["streams"]), str(r["requests"]), str(r["errors"]), ms(r["lag_p50_s"]), ms(r["lag_p99_s"]),
                 ms(r["ttft_p50_s"]), ms(r["ttft_p99_s"]), ms(r["ttft_err_p50_s"]), ms(r["ttft_err_p99_s"]),
                 ms(r["gap_p50_s"]), ms(r["gap_p99_s"]), ms(r["hub_lag_p99_s"]),
                 f"{r['events_per_s']:.0f}" if r["events_per_s"] else "-",
                 f"{r['cpu'] * 100:.0f}%" if r["cpu"] is not None else "-",
                 f"{r['mock_cpu'] * 100:.0f}%" if r["mock_cpu"] is not None else "-",
                 "yes" if r["lag_p99_s"] is not None and r["lag_p99_s"] < LAG_LIMIT_S else "NO"]
        print("  ".join(f"{c:>12}" for c in cells))
    print("(times in ms; lag = receipt - mock send time per token event; TTFT err = our TTFT - the mock's own)")
    ours = next((r for r in results["tokenpulse"] if r["streams"] == peer_streams), None)
    print(f"\nside by side at {peer_streams} streams (truth TTFT {TRUTH_TTFT_MS:g} ms, gap {1000 / RATE:g} ms):")
    head = ("client", "requests", "TTFT p50", "TTFT p99", "ITL mean", "gap p50", "gap p99", "client CPU")
    print("  ".join(f"{h:>12}" for h in head))
    if ours:
        print("  ".join(f"{c:>12}" for c in ("tokenpulse", str(ours["requests"]), ms(ours["ttft_p50_s"]),
                                            ms(ours["ttft_p99_s"]), "-", ms(ours["gap_p50_s"]), ms(ours["gap_p99_s"]),
                                            f"{ours['cpu'] * 100:.0f}%" if ours["cpu"] is not None else "-")))
    for p in results["peers"]:
        if "error" in p:
            print(f"{p['peer']:>12}  {p['error']}")
            continue
        print("  ".join(f"{c:>12}" for c in (p["peer"], str(p.get("requests")), ms(p.get("ttft_p50_s")),
                                            ms(p.get("ttft_p99_s")), ms(p.get("itl_mean_s")), ms(p.get("itl_p50_s")),
                                            ms(p.get("itl_p99_s")),
                                            f"{p['cpu'] * 100:.0f}%" if p.get("cpu") is not None else "-")))
    print("(peers' gap columns: guidellm's inter-token latency percentiles, aiperf's inter-chunk latency; "
          "client CPU includes all of a peer's processes)")


if __name__ == "__main__":
    sys.exit(main())
