"""The end-of-session summary: what a benchmark session says about the run it stores.

Fed the :class:`~kbench.results.Run` the session is about to store, it reads
the same in-run comparison groups as every other reader
(:func:`kbench.compare.run_groups`): per group each variant's throughput and
its ratio to the group's baseline with a CI; one-line diagnostics where a
known cause applies; the harness overhead; how much of the possible
input/compute overlap each prefetch setting achieved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from kbench import _format, compare, stats
from kbench import fingerprint as kfingerprint
from kbench.compare import HARNESS_OVERHEAD_TARGET
from kbench.record import BenchmarkRecord
from kbench.results import Run

# Comparison groups whose name starts with this run one workflow against itself
# (benchmarks/test_noise.py): their ratio should be 1.00 within its CI.
A_A_PREFIX = "a/a "
# The harness suite's comparison groups (benchmarks/test_harness.py), as
# kbench.compare.HARNESS_CHECK selects them ("harness *").
HARNESS_PREFIX = "harness "
# The prefetch suite's variants that bound the others (see benchmarks/test_prefetch.py).
COMPUTE_ONLY, INPUT_ONLY = "compute-only", "input-only"
# A prefetch setting's record may name, under this key of its extras, the
# input-only variant that bounds it (its own pipeline pulled alone, e.g. with
# the same map parallelism); INPUT_ONLY otherwise.
INPUT_BOUND = "input_bound"
# A round is called disturbed when the hypervisor stole more than this share of
# the machine's CPU time during it: a tenth of the machine gone is three times
# the 3% harness-overhead bound and twice a +-5% ratio CI, so such a round's
# speed says more about the neighbours than about the workflow. Measured here: a default-
# profile session had steal median 0.0%, max 9.5% over 483 rounds (0 called
# disturbed); the issue that asked for telemetry saw up to ~30% on bad hours.
DISTURBED_STEAL = 0.10
# Disturbed rounds named in the noise line, at most; the rest are counted.
DISTURBED_SHOWN = 5
# Overlap times are shown per this many samples: reads well at any batch size.
OVERLAP_PER_SAMPLES = 1000


@dataclasses.dataclass(frozen=True)
class Diagnostic:
    """A known cause, said in one line when ``applies(member, fingerprint)``."""

    applies: Callable[[compare.Member, Mapping], bool]
    message: Callable[[compare.Member, Mapping], str]


def _is_slower(member: compare.Member) -> bool:
    return member.ratio is not None and member.ratio[2] < 1.0


def _native(fp: Mapping, kind: str) -> bool:
    return bool(fp.get("cpu", {}).get("native_low_precision", {}).get(kind))


def _on_cpu(member: compare.Member) -> bool:
    return "CPU" in (member.record.device or "").upper()


_PRECISION_KIND = {"mixed_float16": "fp16", "mixed_bfloat16": "bf16"}
# A mixed-precision variant below this share of float32's throughput is not
# paying for casts: here, on a CPU reporting AVX512_FP16, mixed_float16 ran at
# 0.01-0.02x of float32 (MLP and CNN, both loops) while mixed_bfloat16, casts
# and all, ran at 0.96-1.60x. A half is far from either.
SLOW_DESPITE_NATIVE = 0.5


def _native_flags(fp: Mapping, kind: str) -> str:
    flags = set(fp.get("cpu", {}).get("flags", ()))
    return ", ".join(f.upper() for f in kfingerprint.NATIVE_LOW_PRECISION_FLAGS[kind]
                     if f in flags) or "its flags"

DIAGNOSTICS: tuple[Diagnostic, ...] = (
    Diagnostic(
        applies=lambda m, fp: (m.variant in _PRECISION_KIND and _is_slower(m) and _on_cpu(m)
                               and not _native(fp, _PRECISION_KIND[m.variant])),
        message=lambda m, fp: (
            f"{m.variant} is slower than float32 here: this CPU has no native "
            f"{_PRECISION_KIND[m.variant]} arithmetic, so TF emulates it with casts; mixed "
            "precision pays off on GPUs with tensor cores or CPUs with AMX / AVX512-BF16/FP16."),
    ),
    Diagnostic(
        applies=lambda m, fp: (m.variant in _PRECISION_KIND and _on_cpu(m) and m.ratio is not None
                               and m.ratio[2] < SLOW_DESPITE_NATIVE
                               and _native(fp, _PRECISION_KIND[m.variant])),
        message=lambda m, fp: (
            f"{m.variant} runs at {m.ratio[0]:.2f}x of float32 although this CPU reports native "
            f"{_PRECISION_KIND[m.variant]} ({_native_flags(fp, _PRECISION_KIND[m.variant])}): "
            "TensorFlow's CPU kernels do not use it for this model's ops (that is what this "
            "ratio measures; casting costs a few percent, not this), so on this CPU it is "
            "not a speed option."),
    ),
    Diagnostic(
        applies=lambda m, fp: m.variant == "xla" and _is_slower(m),
        message=lambda m, fp: (
            "XLA is slower than tf.function here: on a model this small there is little to "
            "fuse, and XLA's CPU backend does not use oneDNN's tuned matmul/conv kernels."),
    ),
    Diagnostic(
        applies=lambda m, fp: m.variant == "eager" and _is_slower(m),
        message=lambda m, fp: (
            "eager runs each op from Python with no graph: the per-op overhead dominates a "
            "small model's step; use tf.function (or fit's default) outside debugging."),
    ),
    Diagnostic(
        applies=lambda m, fp: ((m.record.comparison or "").startswith(A_A_PREFIX)
                               and m.ratio is not None and not m.ratio[1] <= 1 <= m.ratio[2]),
        message=lambda m, fp: (
            "the A/A ratio (one workflow against itself) excludes 1.00: expected in about 1 "
            "session of 20 by chance; if it repeats, the interleaving is biased (the order of "
            "variants, or something that favours the first one built)."),
    ),
)


def _member_line(member: compare.Member, baseline: BenchmarkRecord | None) -> str:
    s = member.record.throughput
    head = f"  {member.variant:<30} {_format.rate(s.median):>10} samples/s " \
           f"[{_format.rate(s.ci_low)}, {_format.rate(s.ci_high)}]"
    tail = f"cv {_format.share(s.cv)}"
    if member.ratio is None:
        return f"{head}  {tail}  (baseline)"
    label = f"{member.variant}/{member.record.baseline}"
    how = (f"paired over {len(member.record.samples_per_s)} cycles"
           if baseline is not None and compare.paired(member.record, baseline) else "unpaired")
    ratio, low, high = member.ratio
    verdict = "; no difference resolved" if low <= 1 <= high else ""
    return f"{head}  {tail}  {label} {_format.ratio(ratio, low, high)} ({how}{verdict})"


def _harness_lines(group: compare.Group) -> list[str]:
    """The harness overhead with its CI, and whether it meets HARNESS_OVERHEAD_TARGET."""
    kbench = next((m for m in group.members if m.variant == "kbench" and m.ratio), None)
    if not group.name.startswith(HARNESS_PREFIX) or kbench is None:
        return []
    ratio, low, high = kbench.ratio
    limit, target = 1 - HARNESS_OVERHEAD_TARGET, _format.share(HARNESS_OVERHEAD_TARGET, 0)
    if high < limit:
        verdict = f"OVER the {target} target: its whole CI is above it"
    elif low > 1 + HARNESS_OVERHEAD_TARGET:
        # kbench cannot be faster than the same fit without it: the reference was disturbed.
        verdict = (f"kbench ran faster than the bare reference beyond the {target} target: "
                   "the reference's rounds were disturbed; rerun")
    elif low >= limit:
        verdict = f"within the {target} target"
    else:
        verdict = f"inconclusive: its CI reaches past the {target} target"
    return [f"  harness overhead: {_format.share(1 - ratio)} [{_format.share(1 - high)}, "
            f"{_format.share(1 - low)}] of a plain model.fit's throughput ({verdict})"]


def _seconds_per_k(rates: np.ndarray) -> np.ndarray:
    """Mean seconds per OVERLAP_PER_SAMPLES samples along the last axis."""
    return np.mean(OVERLAP_PER_SAMPLES / rates, axis=-1)


def overlap_gain(serial_s: float, ideal_s: float, measured_s: float) -> float:
    """The share of the possible overlap gain a setting achieved: 0 when it takes as long
    as input + compute run one after the other, 1 when as long as the slower alone."""
    return (serial_s - measured_s) / (serial_s - ideal_s) if serial_s > ideal_s else float("nan")


def overlap_gain_ci(input_rates, compute_rates, measured_rates) -> tuple[float, float, float]:
    """A setting's share of the possible overlap gain, with a 95% CI over lockstep cycles.

    Each argument is the per-cycle samples/s of one variant of one lockstep
    group (input-only, compute-only, the setting); cycles are resampled jointly.
    """
    def gain(t_in, t_c, t):
        t_in, t_c, t = _seconds_per_k(t_in), _seconds_per_k(t_c), _seconds_per_k(t)
        serial = t_in + t_c
        with np.errstate(divide="ignore", invalid="ignore"):
            return (serial - t) / (serial - np.maximum(t_in, t_c))

    return stats.paired_statistic_ci([input_rates, compute_rates, measured_rates], gain)


# A setting within this share of the slower bound is bounded by that side: the
# prefetch settings' own throughput CIs were +-10-20% in the default-profile
# runs here (10 cycles), so a setting closer than 10% cannot be told apart
# from its bound.
BOUND_MARGIN = 0.10
# A setting whose process used at least this share of the machine's cores is
# bounded by the cores themselves: input and compute compete for them. In a
# default-profile run here (2 cores) every prefetch setting used 1.61-1.81
# cores a round (median) and input-only alone 1.75-1.77, against 1.22-1.30
# for compute-only; 0.75 (1.5 cores) sits between the two.
CORES_SATURATED = 0.75


def _cores_used(record: BenchmarkRecord) -> float | None:
    cores = [n.cpu_s / n.wall_s for n in record.round_noise if n.wall_s > 0]
    return float(np.median(cores)) if cores else None


def bounding_resource(t: float, t_in: float, t_c: float, cores_used: float | None,
                      machine_cores: int | None) -> str:
    """What bounds a prefetch setting: "input", "compute", "cores shared" or "serial"."""
    if t <= max(t_in, t_c) * (1 + BOUND_MARGIN):
        return "input" if t_in > t_c else "compute"
    if cores_used is not None and machine_cores and cores_used >= CORES_SATURATED * machine_cores:
        return "cores shared"
    return "serial"


_BOUND_WORDS = {
    "input": "input-bound: the pipeline alone is this slow",
    "compute": "compute-bound: as fast as training on cached batches",
    "cores shared": "cores shared: the process keeps every core busy, so input and compute "
                    "compete for them instead of overlapping",
    "serial": "serial: input and compute take turns with cores to spare (nothing overlaps)",
}


def _overlap_lines(group: compare.Group, fp: Mapping) -> list[str]:
    """Each prefetch setting's share of the possible overlap gain, and what bounds it."""
    by_variant = {m.variant: m.record for m in group.members}
    settings = {k: r for k, r in by_variant.items()
                if k != COMPUTE_ONLY and not k.startswith(INPUT_ONLY)}
    bound_of = {k: r.extras.get(INPUT_BOUND, INPUT_ONLY) for k, r in settings.items()}
    if COMPUTE_ONLY not in by_variant or not set(bound_of.values()) & set(by_variant):
        return []
    rates = {k: np.asarray(r.samples_per_s) for k, r in by_variant.items()}
    t = {k: float(_seconds_per_k(v)) for k, v in rates.items()}
    t_c = t[COMPUTE_ONLY]
    cores = fp.get("cpu", {}).get("usable_cores")
    lines = []
    for bound in sorted(set(bound_of.values()) & set(by_variant)):
        t_in = t[bound]
        paired = all(compare.paired(by_variant[k], by_variant[bound])
                     for k in (COMPUTE_ONLY, *settings))
        which = "" if bound == INPUT_ONLY else f" ({bound})"
        lines.append(f"  bounds per 1k samples{which}: input {t_in:.3f} s, compute {t_c:.3f} s, "
                     f"serial {t_in + t_c:.3f} s, ideal overlap {max(t_in, t_c):.3f} s"
                     + ("" if paired else " (not paired: no CI)"))
        lines += _cpu_work_line(by_variant[bound], by_variant[COMPUTE_ONLY], t_in, t_c, cores)
        for name in (k for k, b in bound_of.items() if b == bound):
            lines += _setting_lines(name, by_variant[name], rates, t_in, t_c, bound, paired,
                                    cores)
    return lines


def _cpu_work_line(input_only: BenchmarkRecord, compute: BenchmarkRecord, t_in: float,
                   t_c: float, machine_cores: int | None) -> list[str]:
    """The CPU work input and compute need per 1k samples, and the time it takes at the
    least when every core does it: a third bound, the one a small CPU hits first."""
    used_in, used_c = _cores_used(input_only), _cores_used(compute)
    if used_in is None or used_c is None or not machine_cores:
        return []
    work_in, work_c = used_in * t_in, used_c * t_c
    return [f"  CPU work per 1k samples: input {work_in:.3f} core-s, compute {work_c:.3f} "
            f"core-s: at least {(work_in + work_c) / machine_cores:.3f} s on "
            f"{machine_cores} cores"]


def _setting_lines(name, record, rates, t_in, t_c, bound, paired, cores) -> list[str]:
    t = float(_seconds_per_k(rates[name]))
    if paired:
        gain, low, high = overlap_gain_ci(rates[bound], rates[COMPUTE_ONLY], rates[name])
        share = f"{_format.share(gain, 0)} [{_format.share(low, 0)}, {_format.share(high, 0)}]"
    else:
        gain = low = overlap_gain(t_in + t_c, max(t_in, t_c), t)
        share = _format.share(gain, 0)
    resource = bounding_resource(t, t_in, t_c, _cores_used(record), cores)
    lines = [f"  {name:<30} {t:.3f} s per 1k samples: {share} of the possible overlap "
             f"gain; {_BOUND_WORDS[resource]}"]
    if paired and low > 1:
        lines.append(f"  ! {name} beat the ideal overlap: its pipeline ran faster inside "
                     f"training than {bound} pulls it alone, so {bound} does not bound "
                     "this setting")
    return lines


def _group_lines(group: compare.Group, fp: Mapping) -> list[str]:
    lines = [group.name, *(_member_line(m, group.baseline) for m in group.members)]
    lines += _harness_lines(group)
    for member in group.members:
        if member.record.invalid:
            lines.append(f"  ! INVALID, compare and gate refuse it: {member.record.invalid}")
        lines += [f"  ! {d.message(member, fp)}" for d in DIAGNOSTICS if d.applies(member, fp)]
    if group.members[0].record.suite == "prefetch":
        lines += _overlap_lines(group, fp)
    return lines


def noise_lines(records: Sequence[BenchmarkRecord]) -> list[str]:
    """One line on how much the machine was disturbed, naming the disturbed rounds."""
    rounds = [(r.key, i, n) for r in records for i, n in enumerate(r.round_noise, 1)]
    if not rounds:
        return []
    steal = [n.steal for _, _, n in rounds if n.steal is not None]
    cores = [n.cpu_s / n.wall_s for _, _, n in rounds if n.wall_s > 0]
    busy = f"the process used {float(np.median(cores)):.2f} cores a round (median)"
    if not steal:
        return [f"machine noise: CPU steal not readable here (no /proc/stat); {busy}"]
    disturbed = [(key, i, n.steal) for key, i, n in rounds
                 if n.steal is not None and n.steal > DISTURBED_STEAL]
    named = ", ".join(f"{key} round {i} ({_format.share(share, 0)})"
                      for key, i, share in disturbed[:DISTURBED_SHOWN])
    more = len(disturbed) - DISTURBED_SHOWN
    line = (f"machine noise: CPU steal {_format.share(float(np.median(steal)))} of each round "
            f"(median, max {_format.share(max(steal))}); {busy}; {len(disturbed)} of "
            f"{len(steal)} rounds disturbed (steal > {_format.share(DISTURBED_STEAL, 0)})")
    if disturbed:
        line += f": {named}" + (f", and {more} more" if more > 0 else "")
    return [line]


def summary_lines(run: Run, fingerprint: Mapping | None = None) -> list[str]:
    """The end-of-run summary of ``run``: per comparison group, ratios with CIs and diagnostics.

    Args:
        run: the session's run, as it will be stored.
        fingerprint: the machine the diagnostics speak of; default the run's own.
    """
    fp = run.fingerprint if fingerprint is None else fingerprint
    lines: list[str] = []
    groups = compare.run_groups(run)
    for group in groups:
        lines += _group_lines(group, fp)
    lines += noise_lines(list(run.results.values()))
    lines += spread_lines(run, groups)
    return lines


def spread_lines(run: Run, groups: Sequence[compare.Group] | None = None) -> list[str]:
    """How noisy single rounds were, and how much of that pairing left in the ratios
    (``groups``: the run's comparison groups, if already computed)."""
    cvs = [r.throughput.cv for r in run.results.values()]
    if not cvs:
        return []
    line = (f"spread across rounds (cv): median {_format.share(float(np.median(cvs)))} over "
            f"{len(cvs)} benchmarks")
    pair_sds = [float(np.std(np.log(np.divide(m.record.samples_per_s,
                                                g.baseline.samples_per_s)), ddof=1))
                for g in (compare.run_groups(run) if groups is None else groups)
                for m in g.members
                if m.ratio is not None and compare.paired(m.record, g.baseline)
                and len(m.record.samples_per_s) > 1]
    if pair_sds:
        line += (f"; per-cycle spread of paired ratios: median "
                 f"{_format.share(float(np.median(pair_sds)))} over {len(pair_sds)} ratios "
                 "(what interleaving leaves of the machine's noise)")
    return [line]
