#!/usr/bin/python3
"""Decoding benchmark: every method against greedy search on the same model,
in one run.

    /usr/bin/python3 bench/decode.py [--build build] [--threads 1] [--new 64] [--rounds 3] [--quick] [--model demo|gpt2]

bench_decode (bench_decode.c) runs one method per fresh process on the demo
decoder (4 layers, d 256, vocab 8000; cd's amateur: the demo amateur; its 13 MB
of weights stay in this CPU's cache, so a step is compute-bound) or, with
--model gpt2, on GPT-2 small's shape (12 layers, d 768, vocab 50257: 500 MB
streamed from memory every step, as real models are), 32-token
prompts, `--new` tokens each without EOS, at batch 1 and 8. Prints the time
to the first token (the prefill and the first choice, ms), the time per
output token after it (ms: one decoding step of the batch), tokens/s over
the whole call, the ratio of the time per token to greedy's with the
issue's target (contrastive search k=5 <= 1.3x, DoLa <= 1.15x, CAD and
AdaCAD <= 1.2x; beam, sampling and contrastive decoding are listed without
a target), and contrastive search's extra memory beside greedy's (peak
resident memory the call added: it should be about greedy's, not k times).

"floor": the ratio to greedy's measured time per token that no
implementation of the method could beat on this machine: its step's
multiply-adds over the FMA peak or its bytes (weights, KV cache) over the
read bandwidth, whichever is longer (`bench_decode machine` measures both
at the start of the run; where greedy's own step read its bytes faster
than that measure, greedy's rate is the bandwidth; the demo decoder's
weights stay in cache, so its floor counts the multiply-adds only). A target above its floor is within this
machine's reach; one below it is not. "ideal": the method's floor over
greedy's floor, the ratio if both ran at this machine's limits. A faster
greedy lowers every "floor" and moves the measured ratios toward "ideal";
a target below its ideal is out of reach of any code on this machine (the
extra rows cost FMAs where greedy's step costs only the weights' stream).

Shared machines drift by tens of percent over minutes, so the methods are
interleaved: `--rounds` rounds (3; 1 with --quick) each run every method
once (per process: one warm-up and one timed call of each length), and each
method keeps its round with the least time per token.
"""
import argparse
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = {"cs": 1.3, "dola": 1.15, "cad": 1.2, "adacad": 1.2}
NAMES = {"greedy": "greedy", "sample": "sampling (top-p 0.95)", "beam": "beam search (4)",
         "cs": "contrastive search (k=5)", "cd": "contrastive decoding", "cad": "CAD", "adacad": "AdaCAD",
         "dola": "DoLa"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="one round (noisier)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", choices=["demo", "gpt2"], default="demo")
    a = ap.parse_args()
    exe = os.path.join(a.build, "bench", "bench_decode")
    rounds = 1 if a.quick else a.rounds
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    mach = json.loads(subprocess.run([exe, "machine", str(a.threads)], env=env, check=True, capture_output=True,
                                     text=True).stdout.strip().splitlines()[-1])
    print(f"model {a.model}, threads {a.threads}, {a.new} new tokens per prompt, prompts of 32 tokens; "
          f"this machine: read {mach['gbps']:.1f} GB/s, FMA peak {mach['gmacs']:.1f} G multiply-adds/s")
    print(f"{'method':<26}{'batch':>6}{'TTFT ms':>9}{'ms/token':>9}{'tokens/s':>10}{'vs greedy':>11}{'floor':>7}"
          f"{'ideal':>7}{'target':>8}  {'':<4}{'mem MiB':>8}")
    fails = 0
    for batch in (1, 8):
        res = {}
        for _ in range(rounds):
            for m in NAMES:
                out = subprocess.run([exe, m, str(batch), str(a.threads), str(a.new), "1", a.model], env=env,
                                     check=True, capture_output=True, text=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                if m not in res or r["tpot_ms"] < res[m]["tpot_ms"]:
                    res[m] = r
        g = res["greedy"]["tpot_ms"]
        # the bandwidth a step can reach: the streaming sum's, or greedy's own if it read faster (this
        # VM's bandwidth swings by 1.5x between minutes; a floor must not sit above what was done)
        gbps = max(mach["gbps"], res["greedy"]["bytes"] / (g * 1e6))
        def floor_ms(r):
            return 1e3 * max(r["bytes"] / (gbps * 1e9), r["macs"] / (mach["gmacs"] * 1e9))
        for m, r in res.items():
            ratio = r["tpot_ms"] / g
            t = TARGETS.get(m)
            ok = "" if t is None else ("ok" if ratio <= t else "MISS")
            fails += ok == "MISS"
            floor = ideal = "-"
            if r["macs"] > 0:
                floor = f"{floor_ms(r) / g:.2f}x"
                ideal = f"{floor_ms(r) / floor_ms(res['greedy']):.2f}x"
            print(f"{NAMES[m]:<26}{batch:>6}{r['ttft_ms']:>9.1f}{r['tpot_ms']:>9.2f}{r['tokens_per_s']:>10.1f}"
                  f"{ratio:>10.2f}x{floor:>7}{ideal:>7}{(f'{t:.2f}x' if t else '-'):>8}  {ok:<4}{r['mem_kb'] / 1024:>8.2f}")
        mg, mc = res["greedy"]["mem_kb"], res["cs"]["mem_kb"]
        print(f"  batch {batch}: contrastive search adds {mc / 1024:.2f} MiB, greedy {mg / 1024:.2f} MiB "
              f"({mc / max(mg, 1):.2f}x; k = 5 copies of the cache would be ~5x)")
    print(f"{fails} target(s) missed")


if __name__ == "__main__":
    main()
