"""The Markdown summary of a benchmark run (build/bench/README.md)."""
from __future__ import annotations

LABELS = {"ptm_lib": "ptm_lib TransformerLM, LM head at masked positions (default)",
          "ptm_lib_all": "ptm_lib TransformerLM, logits everywhere (equal work)",
          "bert": "transformers BertForMaskedLM (SDPA)",
          "megatron": "transformers MegatronBertForMaskedLM (eager; same function as ptm_lib)"}


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = ["# Benchmark figures", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, **{m['threads']} torch threads**, device {m['device']}; "
             f"Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}.",
             f"Load average (1, 5, 15 min) at the start: {m['loadavg']}, at the end: {results.get('loadavg_end')}"
             f" ({_load_note(m, results)}).",
             f"fp32 matmul peak measured in this run: **{m['peak_gflops']} GFLOP/s** "
             f"(by size: {m['gflops_by_size']}). Total benchmark time {results.get('wall_s')} s.", ""]
    if "mlm" in results:
        lines += _mlm_section(results["mlm"])
    if "inference" in results:
        lines += _inference_section(results["inference"])
    if "course" in results:
        lines += _course_section(results["course"])
    return "\n".join(lines) + "\n"


def _load_note(m: dict, results: dict) -> str:
    """Busy: other work before the start, or more than the benchmark's own threads at the end."""
    busy = m["loadavg"][0] > 0.5 or (results.get("loadavg_end") or [0])[0] > m["threads"] + 0.5
    return ("the machine was shared: other processes were running, figures taken under load" if busy
            else "the machine was quiet")


def _mlm_section(mlm: dict) -> list[str]:
    lines = ["## Masked-LM training step (forward, loss, backward, AdamW)", "",
             "Interleaved timing (A B C D A B C D ...), medians. MFU = FLOPs counted by "
             "`torch.utils.flop_counter` for the step / step time / matmul peak. CPU ms: the process's CPU "
             "time a step, all threads (on a shared machine less inflated than the wall time).", ""]
    for name, r in mlm.items():
        s = r["size"]
        lines += [f"### {name}: V {s['vocab_size']}, T {s['max_len']}, B {s['batch']}, D {s['d_model']}, "
                  f"{s['n_layers']} layers, {s['n_heads']} heads ({r['tokens_per_step']} tokens a step)", "",
                  "| model | step ms | tokens/s | CPU ms a step | GFLOP/step | MFU |", "|---|---:|---:|---:|---:|---:|"]
        for v, row in r["variants"].items():
            lines.append(f"| {LABELS.get(v, v)} | {row['step_ms']} | {row['tokens_per_s']:,.0f} | "
                         f"{row['cpu_ms_per_step']} | {row['gflop_per_step']} | {100 * row['mfu']:.0f} % |")
        eq, fl = r["equal_loss"], r["flops_per_token_check"]
        lines += ["", f"- Same loss as MegatronBertForMaskedLM on the same weights (before and after one AdamW "
                      f"step): **{'yes' if eq['equal'] else 'NO'}** (max |difference| {eq['max_abs_diff']:.2g}, "
                      f"loss {eq['before_step']['ptm_lib']:.4f}).",
                  f"- `flops_per_token(T, training=True)` = {fl['formula']:,.0f}; counted with logits everywhere: "
                  f"{fl['counted_logits_everywhere']:,.0f} per token (formula / counted = {fl['formula_over_counted']})."]
        if "speedup_vs_bert" in r:
            sp = r["speedup_vs_bert"]
            lines.append(f"- ptm_lib / BertForMaskedLM tokens/s: **{sp['equal_work']}x** at equal work, "
                         f"**{sp['default']}x** as each runs by default (by CPU time a step: "
                         f"{sp['equal_work_cpu_time']}x and {sp['default_cpu_time']}x).")
        lines.append("")
    return lines


def _inference_section(inf: dict) -> list[str]:
    lines = ["## Inference: the shipped mini-BERT, fp32 vs int8 dynamic quantisation", "",
             f"{inf['model']}, {inf['threads']} thread(s); size {inf['size_mb']['fp32']} MB fp32, "
             f"{inf['size_mb']['int8']} MB int8. `compare_latency` (interleaved), medians.", "",
             "| batch | T | fp32 ms | int8 ms | fp32 seq/s | int8 seq/s | int8 speed-up | same top-1 |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, r in inf.items():
        if key.startswith("batch_"):
            lines.append(f"| {key[6:]} | {r['seq_len']} | {r['fp32_ms']} | {r['int8_ms']} | {r['fp32_seq_per_s']:,.0f} | "
                         f"{r['int8_seq_per_s']:,.0f} | {r['speedup']}x | {100 * r['top1_agreement']:.1f} % |")
    return lines + [""]


def _course_section(course: dict) -> list[str]:
    lines = ["## Course wall time per notebook (s)", "",
             f"From the course runner's results files in `{course['results_dir']}` (the latest run of each "
             "notebook; the course is not rerun by `make bench`).", "",
             "| notebook | smoke | full |", "|---|---:|---:|"]
    for nb, r in course["notebooks"].items():
        lines.append(f"| {nb} | {_s(r['smoke'])} | {_s(r['full'])} |")
    lines.append(f"| **total** (of those present) | {course['total_s']['smoke']} | {course['total_s']['full']} |")
    if course["missing"]:
        lines += ["", f"Missing (no results file of that mode): {', '.join(course['missing'])}. "
                      "Run `make smoke` / `make course` first to fill them in."]
    return lines + [""]


def _s(x) -> str:
    return "missing" if x is None else f"{x:.1f}"
