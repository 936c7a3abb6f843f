"""Generate notebooks/06e_language_tasks.ipynb (source only; outputs come from `make execute`)."""
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = sys.argv[1] if len(sys.argv) > 1 else "/work/wt-qa/notebooks/06e_language_tasks.ipynb"
cells = []


def md(text):
    cells.append(new_markdown_cell(text.strip("\n")))


def code(text, tags=()):
    cells.append(new_code_cell(text.strip("\n"), metadata={"tags": list(tags)}))


md(r"""
# 06e · Other language tasks: question answering and translation

Essay §6 lists what pre-trained language models are used for beyond classification: reading
comprehension (find the answer to a question in a text) and machine translation. Chapter 3
measured pretraining on a classification task; this lesson measures it on these two, with the
course's own small models and the synthetic language, where we know what each task needs.

**You will**
1. build an *extractive question-answering* task (SQuAD-style: the answer is a span of the
   document) that only meaning can solve, and measure what heuristics that ignore meaning score;
2. put start/end heads on the shipped mini-BERT and on the same architecture from scratch, and
   measure exact match and token F1 over label budgets and seeds;
3. build a second language with its own words and another word order, and translate into it with
   an encoder-decoder pretrained by *denoising* on monolingual text of both languages, against the
   same model from scratch (BLEU and exact match);
4. pretrain the translator yourself and see how much pretraining it needs.
""")
code(r"""
SMOKE = False  # True: tiny data and few steps, for tests; the env var PTM_SMOKE also turns it on
SEED = 0       # every random choice depends on it; claims must hold for any seed
""", tags=("parameters",))
code(r"""
import time

import ipywidgets as widgets
import numpy as np
import torch
from IPython.display import Markdown, display
from matplotlib.figure import Figure

import ptm_lib as ptm
from ptm_lib.evaluate import labels_needed
from ptm_lib.exercises import check
from ptm_lib.text import qa, translation
from ptm_lib.text.pretrain import load_pretrained

SMOKE = ptm.is_smoke(SMOKE)
ptm.seed_everything(SEED)
report = ptm.Report("06e_language_tasks", smoke=SMOKE, seed=SEED, device="cpu")
T0 = time.perf_counter()
print(f"mode: {report.mode}, seed: {SEED}")
""")
md(r"""
## 1 · Extractive question answering

In SQuAD (Rajpurkar et al. 2016) a question comes with a paragraph, and the answer is a span of
that paragraph: a model only has to point at where the answer starts and where it ends. BERT
(Devlin et al. 2019, §4.2) does it with two vectors on top of the pretrained encoder, one scoring
every token as a start, one as an end.

Our documents are three short sentences of the synthetic language, each about a different topic.
The question is one word of one of those topics that does **not** occur in the document; the answer
is the subject (adjective and noun) of the sentence about that topic. In English it would read:

> Q: *goalkeeper*  D: *The old violin plays a song. The tired striker kicks the ball. A cook bakes bread.*  A: *tired striker*

Finding the subjects is easy (they follow a full stop and a determiner). Which subject is right
depends only on meaning: no word is shared between question and answer, and the sentence order is
random. A model has to know the topics of about a thousand Zipf-distributed words.
""")
code(r"""
ptm.viz.show_source(qa.make_qa_data)
""")
code(r"""
lm, tok, lang, meta = load_pretrained("mini_bert")
N_POOL = 256 if SMOKE else 1024
qa_pool = qa.make_qa_data(lang, N_POOL, seed=1000 + SEED)
qa_val = qa.make_qa_data(lang, 100 if SMOKE else 150, seed=2000 + SEED)
qa_test = qa.make_qa_data(lang, 100 if SMOKE else 400, seed=3000 + SEED)
enc = {name: qa.encode_qa(d, tok, max_len=lm.config.max_len) for name, d in (("pool", qa_pool), ("val", qa_val), ("test", qa_test))}
rows = "\n".join(f"| `{qa_test.questions[i]}` | " + " ".join(f"**{w}**" if qa_test.starts[i] <= k <= qa_test.ends[i] else w
                                                        for k, w in enumerate(qa_test.documents[i])) + " |" for i in range(4))
heur = {rule: qa.squad_scores(qa.heuristic_spans(qa_test, rule, seed=SEED), qa_test) for rule in ("first", "random")}
best_heuristic = max(h["em"] for h in heur.values())
display(Markdown(
    "| question | document (answer in **bold**) |\n|---|---|\n" + rows +
    f"\n\nLabelled pool: {len(qa_pool)} pairs; validation {len(qa_val)}; test {len(qa_test)}. Longest input: "
    f"{enc['pool'].ids.shape[1]} tokens (the mini-BERT reads at most {lm.config.max_len}).\n\n"
    f"**Heuristics that ignore meaning** (test set): the first sentence's subject gets exact match "
    f"{heur['first']['em']:.1%}, a random sentence's subject {heur['random']['em']:.1%}; one sentence in three is "
    f"{1 / 3:.1%}."))
report.record("qa_heuristics", heur)
_ = report.claim("qa_heuristic_em_low", best_heuristic,
                 note="exact match of the better meaning-free heuristic (first or random subject), test set")
""")
md(r"""
### The model and the metrics

`SpanQA` puts two heads on the encoder's hidden states $h_i$ (B, T, D). The score of token $i$ as
the start (and, with other weights, as the end) of the answer is

$$s_i = w^\top h_i + \frac{(W h_i)^\top h_q}{\sqrt{D}},$$

where $h_q$ is the hidden state of the question word. The first term is BERT's SQuAD head (*where*
answers sit); the second a bilinear match with the question, as in DrQA (Chen et al. 2017) (*which*
candidate fits). We tried BERT's linear head alone first: with the question word as one token among
thirty, neither the pretrained nor the scratch model learned to use the question in our trials (1,024
pairs, up to 600 fine-tuning steps: both stayed at the heuristics' one in three). The prediction is the span $(s, e)$,
$s \le e < s + 4$, with the largest $s_s + e_e$.

SQuAD's metrics, from its official evaluation script: both texts are normalised (lower case, no
punctuation, no *a / an / the*); **exact match** is 1 when they are equal; **token F1** is the
harmonic mean of precision and recall of the shared words (a partly right span gets partial credit).
""")
code(r"""
ptm.viz.show_source(qa.SpanQA)
ptm.viz.show_source(qa.token_f1)
""")
md(r"""
## 2 · With and without pretraining, over label budgets

Two arms, the same in everything but the start: **pretrained** (the shipped mini-BERT's weights,
new heads) and **scratch** (the same architecture, random weights). Both fine-tune every weight for
the same number of steps (chapter 3's rule: three epochs, at least 60); each picks its learning rate from the same grid by *validation* F1; the
test set is scored once. Budgets are nested (the 256 pairs contain the 64), three seeds.
""")
code(r"""
QA_BUDGETS = [16, 64] if SMOKE else [64, 256, 1024]
SEEDS = [SEED] if SMOKE else [SEED, SEED + 1, SEED + 2]
QA_STEPS = 5 if SMOKE else None     # None: qa.qa_steps(n), chapter 3's rule: 3 epochs, at least 60
t0 = time.perf_counter()
qa_runs, qa_models = [], {}
for seed in SEEDS:
    for n in QA_BUDGETS:
        for arm in ("pretrained", "scratch"):
            r = qa.run_qa(arm, lm, enc["pool"], (enc["val"], qa_val), (enc["test"], qa_test), n, seed,
                          steps=QA_STEPS, return_model=True)
            model = r.pop("model")
            if seed == SEED and n == QA_BUDGETS[-1]:
                qa_models[arm] = model                   # for the example browser below
            qa_runs.append(r)
qa_seconds = time.perf_counter() - t0
ARMS = {"pretrained": ("pretrained mini-BERT", "tab:blue"), "scratch": ("same architecture, from scratch", "tab:orange")}
score = {(arm, n, metric): np.array([r["test"][metric] for r in qa_runs if r["arm"] == arm and r["n"] == n])
         for arm in ARMS for n in QA_BUDGETS for metric in ("em", "f1")}
fig = Figure(figsize=(10, 3.6), layout="constrained")
for ax, metric, label in zip(fig.subplots(1, 2), ("em", "f1"), ("exact match (%)", "token F1 (%)")):
    for arm, (name, color) in ARMS.items():
        a = 100 * np.array([score[arm, n, metric] for n in QA_BUDGETS])
        ax.errorbar(QA_BUDGETS, a.mean(1), yerr=a.std(1), marker="o", capsize=3, label=name, color=color)
    ax.axhline(100 * heur["first"][metric], ls=":", c="gray", label="heuristic: first subject")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="labelled QA pairs (log scale)", ylabel=label, ylim=(0, 100), title=f"test set, mean ± sd over {len(SEEDS)} seeds")
    ax.legend(fontsize=8)
fig
""")
code(r"""
table = "| arm | metric | " + " | ".join(f"{n} pairs" for n in QA_BUDGETS) + " |\n|---|---|" + "---|" * len(QA_BUDGETS) + "\n"
for arm, (name, _) in ARMS.items():
    for metric in ("em", "f1"):
        table += f"| {name} | {metric.upper()} | " + " | ".join(
            f"{100 * score[arm, n, metric].mean():.1f} ± {100 * score[arm, n, metric].std():.1f}" for n in QA_BUDGETS) + " |\n"
lrs = {arm: sorted({r["lr"] for r in qa_runs if r["arm"] == arm}) for arm in ARMS}
top = QA_BUDGETS[-1]
em_pre, em_scr = float(score["pretrained", top, "em"].mean()), float(score["scratch", top, "em"].mean())
gap_scratch = 100 * (em_pre - em_scr)
gap_heuristic = 100 * (em_pre - best_heuristic)
needed = labels_needed(QA_BUDGETS, [score["scratch", n, "em"].mean() for n in QA_BUDGETS], em_pre)
gaps = [100 * (score["pretrained", n, "em"].mean() - score["scratch", n, "em"].mean()) for n in QA_BUDGETS]
clear = [n for n in QA_BUDGETS if score["pretrained", n, "em"].mean() - best_heuristic >= 0.10]
display(Markdown(
    "Test scores (%) by labelled QA pairs, mean ± sd over seeds:\n\n" + table +
    f"\nWith {top} labelled pairs the pretrained model finds the exact answer {100 * em_pre:.1f} % of the time; the same "
    f"architecture from scratch {100 * em_scr:.1f} %, and the better heuristic {100 * best_heuristic:.1f} %. "
    f"{'The scratch model stays within 10 points of the heuristics at every budget: it learns where subjects are, not which one the question asks for.' if max(100 * (score['scratch', n, 'em'].mean() - best_heuristic) for n in QA_BUDGETS) < 10 else 'The scratch model rises above the heuristics, but far more slowly.'} "
    f"To reach the pretrained model's {100 * em_pre:.1f} % with {top} pairs, scratch needs **{needed}** pairs.\n\n"
    + (f"The pretrained model clears the heuristics by 10 points only from {clear[0]} pairs on; with fewer, its new heads "
       "have not yet learned to use the question. " if clear else
       "The pretrained model does not clear the heuristics by 10 points at any budget here. ") +
    (f"The gap between the arms grows from {gaps[0]:.1f} points ({QA_BUDGETS[0]} pairs) to {gaps[-1]:.1f} ({top} pairs), "
     "the reverse of chapter 3's topic task, where it was largest with few labels: a classifier needs a few words per "
     "topic, these questions need the topics of hundreds of words, which a few hundred pairs barely show. " if gaps[-1] > gaps[0] else
     f"The gap between the arms is {gaps[0]:.1f} points with {QA_BUDGETS[0]} pairs and {gaps[-1]:.1f} with {top}. ") +
    f"Pretraining had taught the encoder which words go together; the heads only have to learn to compare the question "
    f"with each subject. Learning rates chosen on validation: pretrained {lrs['pretrained']}, scratch {lrs['scratch']}. "
    f"({qa_seconds:.0f} s)"))
report.record("qa_scratch_pairs_needed", str(needed))
report.record("qa_scores", {f"{arm}/{n}/{m}": {"mean": float(score[arm, n, m].mean()), "sd": float(score[arm, n, m].std())}
                            for arm in ARMS for n in QA_BUDGETS for m in ("em", "f1")})
_ = report.claim("qa_pretrained_em_most_labels", em_pre,
                 note=f"exact match of the fine-tuned mini-BERT with {top} QA pairs, mean over seeds")
_ = report.claim("qa_pretrained_beats_scratch_em", gap_scratch,
                 note=f"pretrained minus scratch exact match with {top} QA pairs, mean over seeds (points)")
_ = report.claim("qa_pretrained_beats_heuristic_em", gap_heuristic,
                 note=f"pretrained exact match with {top} pairs minus the better heuristic (points)")
_ = report.claim("qa_scratch_near_heuristic_em", 100 * (em_scr - best_heuristic),
                 note=f"scratch exact match with {top} pairs minus the better heuristic (points): what the summary calls 'near'")
""")
md(r"""
### Look at the answers

The slider picks a test question; the panel shows the answers of the two models fine-tuned on the
most pairs (seed `SEED`). It only evaluates, so it updates as you move it.
""")
code(r"""
def show_example(index, out=None):
    one = enc["test"].subset([index])
    lines = [f"**Q:** `{qa_test.questions[index]}` (a word of topic *{lang.topics[lang.topic_of[qa_test.questions[index]]]}*)",
             "", "**D:** " + " ".join(f"{w}<sub>{lang.topics[lang.topic_of[w]][:3]}</sub>" if w in lang.topic_of else w
                                      for w in qa_test.documents[index]), "",
             f"**gold answer:** {qa_test.answer(index)}"]
    for arm, model in qa_models.items():
        s, e = (int(v[0]) for v in qa.predict_spans(model, one))
        pred = " ".join(qa_test.documents[index][s:e + 1])
        ok = "right" if qa.exact_match(pred, qa_test.answer(index)) else "wrong"
        lines.append(f"**{ARMS[arm][0]}:** {pred} ({ok})")
    return Markdown("\n\n".join(lines) + "\n\n(subscripts: the topic of each topical word, which the models are never told)")


_ = ptm.viz.experiment_panel(show_example, {
    "index": widgets.IntSlider(value=0, min=0, max=len(qa_test) - 1, description="test question")}, live=True)
""")
md(r"""
## 3 · Translation into a language with another word order

The second language, "L2", says the same as the synthetic language ("L1") with its own words (each
word spelt backwards and capitalised: a fixed dictionary, but to the tokenizer unrelated symbols) and
another word order: the verb last (SOV, as in Japanese or Turkish), adjectives and determiners after
their noun, postpositions instead of prepositions. To keep the dictionary learnable from a few
hundred sentences, L1 here is a smaller version of the course's language (four topics, about 200 words).
""")
code(r"""
ptm.viz.show_source(translation.LanguagePair.render)
pair = translation.LanguagePair()
ex_src, ex_tgt = pair.parallel(3, seed=SEED)
display(Markdown("| L1 | L2 |\n|---|---|\n" + "\n".join(f"| {' '.join(s)} | {' '.join(t)} |" for s, t in zip(ex_src, ex_tgt))))
""")
md(r"""
**The pretrained model.** An encoder-decoder (2 + 2 layers, d = 64) pretrained like BART (Lewis et
al. 2020): spans covering 30 % of a sentence are each replaced by one `[MASK]`, and the decoder
rewrites the whole sentence. The text is monolingual, half L1 and half L2, and never a translation:
the model can learn each language's word order and which words go together, not the dictionary.
The course ships it (`python -m ptm_lib.text.translation --out data`, 1,000 steps, sha256 checked);
the panel in section 4 pretrains one live.
""")
code(r"""
denoiser, dmeta = translation.load_pair_denoiser()
held_out = {"pretrained": translation.denoising_eval(denoiser, pair),
            "random weights": translation.denoising_eval(translation.build_translator(pair, seed=SEED), pair)}
fig = Figure(figsize=(5.5, 3.2), layout="constrained")
ax = fig.subplots()
ax.plot(dmeta["curve"]["step"], dmeta["curve"]["loss"])
ax.set(xlabel="pretraining step", ylabel="denoising loss (nats per token)", title="shipped denoiser: monolingual L1 + L2")
display(fig)
display(Markdown(f"Held-out denoising loss: **{held_out['pretrained']:.2f}** nats per token after pretraining, "
                 f"{held_out['random weights']:.2f} with random weights (ln V = {np.log(len(pair.tokenizer)):.2f})."))
report.record("denoising_loss_heldout", held_out)
_ = report.claim("mt_denoiser_learned", held_out["random weights"] / held_out["pretrained"],
                 note="held-out denoising loss of random weights divided by that of the shipped denoiser")
""")
md(r"""
### Fine-tuning on parallel sentences

Both arms fine-tune every weight on the same $k$ parallel pairs (nested samples, three seeds) for
the same number of steps, each picking its learning rate from the same grid by *validation* BLEU;
the test set is translated once, greedily.

**BLEU** (Papineni et al. 2002) counts the 1- to 4-grams of the translations that appear in the
references (each clipped to its count there), pools the counts over the corpus, takes the geometric
mean of the four precisions and multiplies by a brevity penalty for translations shorter than the
references. `sacrebleu` is not installed; `corpus_bleu` is checked against hand computations in
`tests/test_translation.py`. **Exact match**: the share of sentences translated word for word.
""")
code(r"""
ptm.viz.show_source(translation.corpus_bleu)
""")
code(r"""
MT_PAIRS = 20 if SMOKE else 200
MT_STEPS = 5 if SMOKE else 150
mt_train = pair.parallel(200 if SMOKE else 1000, seed=10 + SEED)
mt_val = pair.parallel(30 if SMOKE else 100, seed=20 + SEED)
mt_test = pair.parallel(30 if SMOKE else 200, seed=30 + SEED)
t0 = time.perf_counter()
mt_runs, mt_models = [], {}
for seed in SEEDS:
    for arm in ("pretrained", "scratch"):
        r = translation.run_translation(arm, denoiser, pair, mt_train, mt_val, mt_test, MT_PAIRS, seed, steps=MT_STEPS,
                                        return_model=True)
        model = r.pop("model")
        if seed == SEED:
            mt_models[arm] = model
        mt_runs.append(r)
mt_seconds = time.perf_counter() - t0
mt = {(arm, m): np.array([r["test"][m] for r in mt_runs if r["arm"] == arm]) for arm in ARMS for m in ("bleu", "exact")}
hyp = {arm: translation.translate(model, pair, mt_test[0][:3]) for arm, model in mt_models.items()}
MT_NAMES = {"pretrained": "pretrained by denoising", "scratch": "same architecture, from scratch"}
rows = "\n".join(f"| {' '.join(mt_test[0][i])} | {' '.join(mt_test[1][i])} | {' '.join(hyp['pretrained'][i])} | "
                 f"{' '.join(hyp['scratch'][i])} |" for i in range(3))
bleu_gap = float(mt["pretrained", "bleu"].mean() - mt["scratch", "bleu"].mean())
display(Markdown(
    f"| arm | BLEU | exact match (%) |\n|---|---|---|\n" + "\n".join(
        f"| {MT_NAMES[arm]} | {mt[arm, 'bleu'].mean():.1f} ± {mt[arm, 'bleu'].std():.1f} | "
        f"{100 * mt[arm, 'exact'].mean():.1f} ± {100 * mt[arm, 'exact'].std():.1f} |" for arm in ARMS) +
    f"\n\n{MT_PAIRS} parallel pairs, {MT_STEPS} fine-tuning steps, mean ± sd over {len(SEEDS)} seeds "
    f"({mt_seconds:.0f} s). Three test sentences (seed {SEED}):\n\n| L1 | L2 (reference) | pretrained | scratch |\n|---|---|---|---|\n" + rows +
    f"\n\nWith the same pairs and steps, denoising pretraining is worth **{bleu_gap:.1f} BLEU points**. It did not "
    "teach the dictionary (no sentence was ever shown with its translation); it taught the decoder to write L2 (its "
    "word order, which words follow which) and the encoder to represent L1, so the few pairs only have to link the two."))
report.record("mt_scores", {f"{arm}/{m}": {"mean": float(mt[arm, m].mean()), "sd": float(mt[arm, m].std())}
                            for arm in ARMS for m in ("bleu", "exact")})
_ = report.claim("mt_pretrained_bleu", float(mt["pretrained", "bleu"].mean()),
                 note=f"test BLEU of the denoising-pretrained encoder-decoder with {MT_PAIRS} pairs, mean over seeds")
_ = report.claim("mt_pretrained_beats_scratch_bleu", bleu_gap,
                 note=f"pretrained minus scratch test BLEU, {MT_PAIRS} pairs, same steps and lr grid, mean over seeds")
""")
md(r"""
## 4 · Your turn: how much pretraining does translation need?

The panel pretrains a fresh encoder-decoder by denoising for **pretraining steps** (0 = from
scratch), fine-tunes it on **parallel pairs** for **fine-tuning steps** (learning rate 3e-3), and
reports test BLEU. The shipped model had 1,000 pretraining steps. Try 0, 100 and 300 pretraining
steps; then, at 0, find how many pairs or steps scratch needs to catch up.
""")
code(r"""
def live_translation(pretrain_steps, pairs, finetune_steps, out=None):
    if pretrain_steps > 0:
        model, history = translation.pretrain_pair_denoiser(steps=pretrain_steps, n_sentences=max(2000, 128 * pretrain_steps),
                                                            seed=SEED, pair=pair, progress=True, live=False)
    else:
        model = translation.build_translator(pair, seed=SEED)
    train = pair.parallel(pairs, seed=10 + SEED)
    translation.train_translation(model, pair.encode_pairs(*train), steps=finetune_steps, lr=3e-3, batch_size=16, seed=SEED)
    h = translation.translate(model, pair, mt_test[0])
    return Markdown(f"{pretrain_steps} pretraining steps, {pairs} pairs, {finetune_steps} fine-tuning steps: test BLEU "
                    f"**{translation.corpus_bleu(h, mt_test[1]):.1f}**, exact match {translation.exact_match_rate(h, mt_test[1]):.0%}")


_ = ptm.viz.experiment_panel(live_translation, {
    "pretrain_steps": widgets.IntSlider(value=5 if SMOKE else 25, min=0, max=1000, step=25, description="pretraining steps"),
    "pairs": widgets.IntSlider(value=20 if SMOKE else 200, min=10, max=2000, step=10, description="parallel pairs"),
    "finetune_steps": widgets.IntSlider(value=5 if SMOKE else 120, min=5, max=1000, step=5, description="fine-tuning steps"),
})
""")
md(r"""
## Exercises

**Exercise 1 (predict, then measure).** The documents have three sentences. What exact match does
the heuristic "answer with the first sentence's subject" get? Set `answer` to a number between 0 and 1.
""")
code(r"""
solution_1 = heur["first"]["em"]
""", tags=("solution",))
code(r"""
answer = ...  # a number in [0, 1]


def first_subject_em(value):
    assert 0 <= float(value) <= 1, "exact match is a share, between 0 and 1"
    assert abs(float(value) - solution_1) <= 0.1, (f"measured {solution_1:.1%}: the answer is in each of the three "
                                                   "sentences equally often, and the heuristic always picks the first")
    print(f"measured {solution_1:.1%} (one in three is {1 / 3:.1%})")


check("06e.1 first-subject heuristic", answer, first_subject_em, solution=solution_1)
""")
md(r"""
**Exercise 2 (predict, then measure).** With the fewest QA pairs in section 2, does the pretrained
model beat the first-subject heuristic on exact match (mean over seeds)? Set `answer` to `True` or `False`.
""")
code(r"""
solution_2 = bool(score["pretrained", QA_BUDGETS[0], "em"].mean() > heur["first"]["em"])
""", tags=("solution",))
code(r"""
answer = ...  # True or False


def beats_heuristic_with_few(value):
    low = score["pretrained", QA_BUDGETS[0], "em"].mean()
    assert value == solution_2, (f"with {QA_BUDGETS[0]} pairs the pretrained model scores {low:.1%}, the heuristic "
                                 f"{heur['first']['em']:.1%}: the heads must first learn *where* answers are")
    print(f"pretrained with {QA_BUDGETS[0]} pairs: {low:.1%}; heuristic {heur['first']['em']:.1%}")


check("06e.2 few QA pairs", answer, beats_heuristic_with_few, solution=solution_2)
""")
md(r"""
**Exercise 3 (explore).** In section 4's panel, set pretraining steps to 0 and find the number of
parallel pairs (and fine-tuning steps) at which the model from scratch reaches the BLEU of the shipped
pretrained model with 200 pairs. What does one pretraining run save each time you need a new
translation direction?
""")
md(r"""
## Results of this run
""")
code(r"""
report.record("notebook_seconds", time.perf_counter() - T0, unit="s")
path = report.save()
print("saved", path.name)
report
""")
md(r"""
## Summary

* Extractive QA points at a span: two scores per token (start, end) on top of an encoder. On
  questions that only meaning can answer, the pretrained mini-BERT learns to answer from about a
  thousand labelled pairs, while the same architecture from scratch, with the same steps and
  learning-rate search, stays within a few points of heuristics that ignore meaning: what the task
  needs (the topics of a thousand words) is what masked-LM pretraining learned without labels.
* With very few pairs, pretraining alone is not enough: the new heads must still learn where answers
  sit and how to compare them with the question.
* An encoder-decoder pretrained by denoising on monolingual text of two languages translates far
  better from a few hundred parallel sentences than the same model from scratch with the same steps,
  although no translation was ever in its pretraining data.
* Every comparison has its control (the same architecture from scratch), the same steps and the same
  learning-rate grid chosen on validation, over seeds.

**Next:** the chapter map in [00 · Start here](00_start_here.ipynb) shows which chapters exist.
""")

nb = new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
nb.metadata["language_info"] = {"name": "python"}
nb.metadata["title"] = "06e · Other language tasks: question answering and translation"
nbformat.write(nb, OUT)
print(len(cells), "cells")
