"""Probe (not shipped): does the notice's MiniLM embedding, as extra evidence, lift the sector model?

Same data, folds and truths as ``scripts/train_sector_model.py``'s cross-validation and
``bench/enrich_quality.py``: the 852 CPV-coded UK Contracts Finder notices with their codes hidden, 5
folds (KFold, seed 0), the CPV code descriptions, hint words and OCDS samples in every fold's training
set; truths ``first_code`` and ``any_code``; Unclassified below ``SECTOR_MIN_CONFIDENCE``.

Per fold, a multinomial logistic regression over the embedding (scikit-learn, lbfgs) is trained on the
embedded code descriptions, hint words (weight ``HINT_WEIGHT``) and the fold's training notices (weight
``NOTICE_WEIGHT`` shared between a notice's divisions), then blended with the shipped words model's
(int8) out-of-fold probabilities, linearly and geometrically. Two things embedded for a notice:

- ``a_text``: its classification text (title, category, description start: what the words model reads),
  a second embedding per notice at ingest;
- ``b_document``: the document the pipeline already embeds (``tender_pipeline.documents.document_text``
  of the offline enrichment, with its codes hidden). Its sector line must come from a words model that
  never saw the notice: a held-out notice's from the fold's model; a training notice's (fold j, outer
  fold k) from a model fitted without folds j and k (10 pair models), so no test notice reaches the
  embedding model through its training documents either.

Optionally (``--knn``) the nearest embedded code descriptions vote (cosine^p, top k) and are blended.
The figures of ``main`` are the heads' own, without the stated procurement type's weight
(``SectorModel.given_types``); ``shipped_out_of_fold``, which ``bench/enrich_quality.py`` reports as
``shipped``, applies it as the product does.
Embeddings and words-model probabilities are cached (``--cache``). Prints JSON.

    PYTHONPATH=plugins:. nice -n 10 .venv/bin/python bench/sector_embedding_probe.py --knn
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

import numpy as np  # noqa: E402

from bench.enrich_quality import figures, ranked_codes  # noqa: E402
from scripts import train_sector_model as train  # noqa: E402
from tender_pipeline.settings import Settings  # noqa: E402

DEFAULT_CACHE = Path(tempfile.gettempdir()) / "sector_embedding_probe"
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0)
C_VALUES = (3.0, 10.0, 30.0)


def classification_text(record) -> str:
    """What the words model reads (``features.record_terms``), as one text."""
    return ". ".join(p for p in (record.title, record.category, record.description[:600]) if p)


class EmbeddingCache:
    """Unit vectors by text, kept in one npz so reruns embed nothing twice."""

    def __init__(self, path: Path, embedder) -> None:
        self.path, self.embedder, self.vectors = path, embedder, {}
        if path.is_file():
            with np.load(path) as data:
                self.vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if self.key(t) not in self.vectors))
        if missing:
            started = time.perf_counter()
            for start in range(0, len(missing), 512):
                chunk = missing[start:start + 512]
                for text, vector in zip(chunk, self.embedder.embed_documents(chunk), strict=True):
                    self.vectors[self.key(text)] = vector
            print(f"embedded {len(missing)} texts in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            self.save()
        return np.stack([self.vectors[self.key(t)] for t in texts]) if texts else np.zeros((0, 384), np.float32)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.vectors)
        np.savez(self.path, keys=np.array(keys), vectors=np.stack([self.vectors[k] for k in keys]))


def words_models(code_texts, code_labels, uk, others, folds, cache: Path, needed):
    """For each left-out set of folds S: the words model fitted without S, its probabilities for the
    notices of S (codes hidden) and the pipeline documents it would give them. Cached as JSON + npz."""
    from tender_pipeline.documents import document_text
    from tender_pipeline.enrich.offline import OfflineEnricher
    from tender_pipeline.models import EnrichedTender
    from tender_pipeline.sector_model import SectorModel
    from tender_pipeline.taxonomy import load_taxonomy

    path = cache / f"words_models-type{train.STATED_TYPE_FACTOR}.json"  # the documents' sector lines depend on it
    if path.is_file():
        return json.loads(path.read_text("utf-8"))
    classes = sorted(set(code_labels))
    fold_of = np.empty(len(uk), dtype=int)
    for k, (_, test) in enumerate(folds):
        fold_of[test] = k
    taxonomy = load_taxonomy("")
    out: dict = {"classes": classes}
    for left_out in needed:
        started = time.perf_counter()
        held = [i for i in range(len(uk)) if fold_of[i] in left_out]
        train_notices = [uk[i] for i in range(len(uk)) if fold_of[i] not in left_out] + list(others)
        docs, labels, weights = train.training_set(code_texts, code_labels, train_notices)
        vec, clf = train.fit(docs, labels, weights)
        hidden = [uk[i].model_copy(update={"cpv_codes": []}) for i in held]
        hidden_others = [r.model_copy(update={"cpv_codes": []}) for r in others]
        p = train.shipped_probabilities(vec, clf, [train.record_terms(r) for r in hidden])
        probs = np.zeros((len(held), len(classes)), dtype=np.float32)
        probs[:, np.searchsorted(classes, clf.classes_)] = p
        with tempfile.TemporaryDirectory(prefix="sector-fold-") as tmp:
            train.write_model(Path(tmp), vec, clf, {})
            enricher = OfflineEnricher(taxonomy, model=SectorModel(Path(tmp)),
                                       min_confidence=Settings().sector_min_confidence)
            records = hidden + hidden_others
            documents = [document_text(EnrichedTender(record=r, enrichment=e, content_hash=""))
                         for r, e in zip(records, enricher.enrich(records), strict=True)]
        name = ",".join(map(str, sorted(left_out)))
        out[name] = {"held": held, "probs": probs.tolist(), "documents": documents[:len(held)],
                     "others_documents": documents[len(held):]}
        print(f"words model without folds {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out), "utf-8")
    return out


def notice_rows(base: tuple[np.ndarray, list[str], np.ndarray], records, vectors: np.ndarray):
    """The embedding head's training rows: the code descriptions and hint words (``base``), then each notice
    once per division of its codes, its weight shared between them (as ``train.training_set``)."""
    xs, ys, ws = [base[0]], list(base[1]), [base[2]]
    for r, x in zip(records, vectors, strict=True):
        divisions = train.divisions_of(r)
        for d in divisions:
            xs.append(x[None])
            ys.append(d)
            ws.append(np.array([train.NOTICE_WEIGHT / len(divisions)]))
    return np.vstack(xs), ys, np.concatenate(ws)


def blend(p_words: np.ndarray, p_emb: np.ndarray, weight: float, kind: str) -> np.ndarray:
    if kind == "linear":
        return (1 - weight) * p_words + weight * p_emb
    g = np.exp((1 - weight) * np.log(p_words + 1e-9) + weight * np.log(p_emb + 1e-9))
    return g / g.sum(axis=1, keepdims=True)


def knn_vote(x: np.ndarray, codes: np.ndarray, code_cols: np.ndarray, n_classes: int, k: int, power: float):
    """The k nearest code descriptions vote for their division with weight cosine^power."""
    sims = x @ codes.T
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    out = np.zeros((len(x), n_classes), dtype=np.float32)
    for row, idx in enumerate(top):
        np.add.at(out[row], code_cols[idx], np.clip(sims[row, idx], 0, None) ** power)
    out += 1e-6
    return out / out.sum(axis=1, keepdims=True)


def summary(truths, probs, classes, threshold) -> dict:
    ranked = ranked_codes(probs, classes)
    conf = probs.max(axis=1)
    keep = ("top1", "top3", "coverage", "accuracy_on_covered", "top1_unclassified_wrong")
    return {name: {k: v for k, v in figures(t, ranked, conf, threshold).items() if k in keep}
            for name, t in truths.items()}


def shipped_out_of_fold(data: Path, cache: Path = DEFAULT_CACHE) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(words, words + embedding head) out-of-fold probabilities of the UK notices, and the columns' codes: the
    shipped setting (variant b, C ``train.EMBED_C``, geometric ``train.EMBED_BLEND``, int8 weights as shipped),
    with the same nested, leak-free documents as ``main``. For ``bench/enrich_quality.py``."""
    from sklearn.model_selection import KFold

    from tender_pipeline.embed import build_embedder

    settings = Settings(embed_backend="local", local_embedder="onnx", embed_threads=1)
    code_texts, code_labels = train.load_code_descriptions(data)
    everything = train.load_notices(data)
    uk = [r for r in everything if r.source == "uk-contracts-finder" and r.tender_id.startswith("uk-cf:")]
    others = [r for r in everything if r not in uk]
    folds = list(KFold(train.FOLDS, shuffle=True, random_state=train.SEED).split(uk))
    needed = [(k,) for k in range(len(folds))] + list(itertools.combinations(range(len(folds)), 2))
    models = words_models(code_texts, code_labels, uk, others, folds, cache, needed)
    classes = models["classes"]
    fold_of = np.empty(len(uk), dtype=int)
    for k, (_, test) in enumerate(folds):
        fold_of[test] = k
    p_words = np.zeros((len(uk), len(classes)), dtype=np.float32)
    p_blend = np.zeros_like(p_words)
    embed = EmbeddingCache(cache / "vectors.npz", build_embedder(settings))
    hints = train.hint_words()
    base_x = embed(list(code_texts) + [w for w, _ in hints])
    base_y = list(code_labels) + [c for _, c in hints]
    base_w = np.array([1.0] * len(code_texts) + [train.HINT_WEIGHT] * len(hints))
    for k, (train_idx, test_idx) in enumerate(folds):
        m = models[str(k)]
        p_words[m["held"]] = np.array(m["probs"], dtype=np.float32)

        def doc_of(i: int, k: int = k) -> str:  # notice i (fold j != k) read by the model without folds j, k
            pair = models[",".join(map(str, sorted((int(fold_of[i]), k))))]
            return pair["documents"][pair["held"].index(i)]

        notice_x = embed([doc_of(int(i)) for i in train_idx] + m["others_documents"])
        coef, bias = train.fit_embedding(*notice_rows((base_x, base_y, base_w), [uk[i] for i in train_idx] + list(
            others), notice_x), classes)
        q, scale = train.quantise(coef)
        test_x = embed([m["documents"][m["held"].index(int(i))] for i in test_idx])
        head = train.softmax(test_x @ (q.astype(np.float32) * scale) + bias)
        p_blend[test_idx] = blend(p_words[test_idx], head, train.EMBED_BLEND, "geometric")
    embed.save()
    return stated_types(uk, p_words, classes), stated_types(uk, p_blend, classes), classes


def stated_types(records, probs: np.ndarray, classes: list[str]) -> np.ndarray:
    """The shipped reading: the division probabilities weighed by the procurement type each notice states
    (``enrich.offline.given_types``, with the shipped manifest's factor, which must be the training script's)."""
    from tender_pipeline.enrich.offline import given_types
    from tender_pipeline.sector_model import get_sector_model
    from tender_pipeline.taxonomy import load_taxonomy

    model = get_sector_model()
    assert list(model.codes) == list(classes), "the shipped model lists other divisions than the folds"
    assert model.stated_type_factor == train.STATED_TYPE_FACTOR, (  # the folds' documents used the script's
        "the shipped manifest's stated_type_factor differs from the training script's: retrain the model")
    return given_types(model, load_taxonomy(""), list(records), probs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=train.DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--knn", action="store_true", help="also the nearest code descriptions' vote")
    parser.add_argument("--threads", type=int, default=1, help="embedder intra-op threads")
    args = parser.parse_args()
    if not (args.data / "uk_contracts_finder" / "notices.csv").is_file():
        print(json.dumps({"skipped": f"{args.data} is absent: no labelled notices"}))
        return 0
    from sklearn.model_selection import KFold

    from tender_pipeline.embed import build_embedder

    settings = Settings(embed_backend="local", local_embedder="onnx", embed_threads=args.threads)
    threshold = settings.sector_min_confidence
    code_texts, code_labels = train.load_code_descriptions(args.data)
    everything = train.load_notices(args.data)
    uk = [r for r in everything if r.source == "uk-contracts-finder" and r.tender_id.startswith("uk-cf:")]
    others = [r for r in everything if r not in uk]
    truths = {"first_code": [{train.label(r)} for r in uk], "any_code": [{c[:2] for c in r.cpv_codes} for r in uk]}
    folds = list(KFold(train.FOLDS, shuffle=True, random_state=train.SEED).split(uk))
    needed = [(k,) for k in range(len(folds))] + list(itertools.combinations(range(len(folds)), 2))
    models = words_models(code_texts, code_labels, uk, others, folds, args.cache, needed)
    classes = models["classes"]
    n, n_classes = len(uk), len(classes)

    # out-of-fold words probabilities (the shipped model's cross-validation) and held-out documents
    p_words = np.zeros((n, n_classes), dtype=np.float32)
    test_docs = [""] * n
    for k in range(len(folds)):
        m = models[str(k)]
        p_words[m["held"]] = np.array(m["probs"], dtype=np.float32)
        for i, d in zip(m["held"], m["documents"], strict=True):
            test_docs[i] = d
    fold_of = np.empty(n, dtype=int)
    for k, (_, test) in enumerate(folds):
        fold_of[test] = k

    def train_doc(i: int, k: int) -> str:  # notice i (fold j != k) read by the model without folds j, k
        m = models[",".join(map(str, sorted((int(fold_of[i]), k))))]
        return m["documents"][m["held"].index(i)]

    embed = EmbeddingCache(args.cache / "vectors.npz", build_embedder(settings))
    hints = train.hint_words()
    base_x = embed(list(code_texts) + [w for w, _ in hints])
    base_y = list(code_labels) + [c for _, c in hints]
    base_w = np.array([1.0] * len(code_texts) + [train.HINT_WEIGHT] * len(hints))
    text_x = embed([classification_text(r) for r in uk])
    others_text_x = embed([classification_text(r) for r in others])
    doc_x = embed(test_docs)
    code_x = base_x[:len(code_texts)]
    code_cols = np.searchsorted(classes, code_labels)

    out: dict = {"data": str(args.data), "threshold": threshold, "notices": n, "classes": n_classes,
                 "embedder": build_embedder(settings).model_id,
                 "stated_type": "not applied here (the heads' own figures); enrich_quality.py's shipped applies it",
                 "words_alone": summary(truths, p_words, classes, threshold)}
    lr_probs: dict[str, dict[float, np.ndarray]] = {}
    lr_ms: list[float] = []
    for variant in ("a_text", "b_document"):
        lr_probs[variant] = {}
        for c in C_VALUES:
            p_emb = np.zeros((n, n_classes), dtype=np.float32)
            for k, (train_idx, test_idx) in enumerate(folds):
                if variant == "a_text":
                    notice_x = np.vstack([text_x[train_idx], others_text_x])
                else:
                    docs = [train_doc(int(i), k) for i in train_idx] + models[str(k)]["others_documents"]
                    notice_x = embed(docs)
                coef, bias = train.fit_embedding(*notice_rows((base_x, base_y, base_w), [uk[i] for i in train_idx]
                                                              + list(others), notice_x), classes, c)
                test_x = text_x[test_idx] if variant == "a_text" else doc_x[test_idx]
                p_emb[test_idx] = train.softmax(test_x @ coef + bias)
                if not lr_ms:  # the LR's cost per notice: one row's matmul + softmax, median
                    for row in test_x[:200]:
                        started = time.perf_counter()
                        train.softmax(row[None] @ coef + bias)
                        lr_ms.append(1000 * (time.perf_counter() - started))
            lr_probs[variant][c] = p_emb
            res = {"embedding_alone": summary(truths, p_emb, classes, threshold)}
            for kind in ("linear", "geometric"):
                for w in WEIGHTS[1:-1]:
                    res[f"{kind}_{w}"] = summary(truths, blend(p_words, p_emb, w, kind), classes, threshold)
            out[f"{variant}_C{c:g}"] = res
            print(f"{variant} C={c}: done", file=sys.stderr)

    if args.knn:
        for variant, x in (("a_text", text_x), ("b_document", doc_x)):
            for k_near, power in itertools.product((10, 20), (1, 4, 10)):
                vote = knn_vote(x, code_x, code_cols, n_classes, k_near, power)
                res = {"vote_alone": summary(truths, vote, classes, threshold)}
                for w in (0.1, 0.2, 0.3):
                    res[f"linear_{w}"] = summary(truths, blend(p_words, vote, w, "linear"), classes, threshold)
                out[f"knn_{variant}_k{k_near}_p{power}"] = res

    # cost per notice: one embedding of the classification text (a), median of single calls
    embedder = build_embedder(settings)
    embedder.embed_documents([classification_text(uk[0])])
    ms = []
    for r in uk[:200]:
        started = time.perf_counter()
        embedder.embed_documents([classification_text(r)])
        ms.append(1000 * (time.perf_counter() - started))
    texts = [classification_text(r) for r in uk]
    batched = []  # as the ingest would: every notice's text in one call, batched by padded tokens
    for _ in range(3):
        started, cpu = time.perf_counter(), time.process_time()
        embedder.embed_documents(texts)
        batched.append((1000 * (time.perf_counter() - started) / n, 1000 * (time.process_time() - cpu) / n))
    out["cost_ms_per_notice"] = {"embed_classification_text_median": round(float(np.median(ms)), 3),
                                 "embed_classification_text_batched_wall_cpu_median":
                                     [round(float(np.median(v)), 3) for v in zip(*batched, strict=True)],
                                 "embed_classification_text_p90": round(float(np.percentile(ms, 90)), 3),
                                 "lr_matmul_softmax_median": round(float(np.median(lr_ms)), 4),
                                 "embed_threads": args.threads}
    np.savez(args.cache / "probs.npz", p_words=p_words,
             **{f"{v}_C{c:g}": p for v, d in lr_probs.items() for c, p in d.items()})
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
