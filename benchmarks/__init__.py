"""The course's benchmark suite: speed goals live here, printed as figures, never in timed unit tests.

    make bench                      # = python -m benchmarks --out build/bench
    python -m benchmarks --quick    # a tiny configuration in seconds (what tests/test_bench.py runs)

It writes ``build/bench/*.json`` and ``build/bench/README.md`` (a Markdown table) with:

* ``machine.json``: the machine, threads, torch/transformers versions, load average, and the
  fp32 matmul peak measured in the same run (:mod:`benchmarks.machine`);
* ``course.json``: wall time of each notebook, smoke and full, from the course runner's
  ``build/results/<notebook>.json`` (:mod:`benchmarks.course_times`; the course is not rerun);
* ``mlm.json``: masked-LM training-step throughput of ``ptm_lib``'s ``TransformerLM`` against
  ``transformers``' ``BertForMaskedLM`` and ``MegatronBertForMaskedLM`` at three sizes, with the
  equal-loss check and each model's FLOP utilisation (:mod:`benchmarks.mlm`);
* ``inference.json``: the shipped mini-BERT's latency, fp32 against int8 dynamic quantisation
  (:mod:`benchmarks.inference`).
"""
