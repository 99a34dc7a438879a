"""Train the shipped sector classifier (tender_pipeline/sector_model) from CPV-labelled text.

    .venv/bin/python scripts/train_sector_model.py            # fit, cross-validate, write weights + manifest
    .venv/bin/python scripts/train_sector_model.py --check    # refit in memory, compare with the shipped files

Labelled data (``--data``, default ../shared/data/real):
- the 9,454 CPV 2008 code descriptions (cpv/cpv_en.json), each labelled with its division;
- each hint word of the shipped divisions (tender_pipeline/data/cpv_divisions.json: "medicines" for 33,
  "landscaping" for 77), words buyers use that the CPV labels lack, as one-word documents;
- the CPV-coded UK Contracts Finder notices (uk_contracts_finder/notices.csv) and OCDS samples
  (ocds_samples/), read by the pipeline's own validation, labelled with their codes' divisions (a notice
  coded for works and for design is an example of both, its weight shared between them).
The model is a one-vs-rest logistic regression (scikit-learn's SGDClassifier, log loss, fixed seed)
over TF-IDF words, word pairs and long words' letter 4-grams (``sector_model.features``); a pair must
occur in two documents.
Notices weigh ``NOTICE_WEIGHT`` times a code description, and each notice's title is added once more
alone (weight 1), so a source that publishes only a short title is read as well as one with a long
description. Cross-validation: 5 folds over the notices, the code descriptions always in training, the
vocabulary refitted per fold, each fold's held-out notices scored through the quantised weights the
product would ship (``shipped_probabilities``).
The weights ship as int8 with one float32 scale per division (``quantise``): 0.9 MB against 3.4 MB as
float16, under the repository's 2 MB a file, and the cross-validated figures unchanged.
Embedding head (``embedding.npz``, the manifest's ``"embedding"``): a multinomial logistic regression
(lbfgs, C ``EMBED_C``) over the local ONNX MiniLM embedding of the code descriptions (weight 1), hint words
(``HINT_WEIGHT``) and every notice's pipeline document (``documents.document_text`` of the offline
enrichment, codes hidden; ``NOTICE_WEIGHT`` shared between its divisions). A UK notice's document carries
the "Sector:" line of the words model of the cross-validation fold that held it out (the OCDS samples,
in every fold's training set, are read by the first fold's model), so the head never learns from a sector
line that saw the notice's codes. The runtime blends it geometrically with the words model,
``p ∝ p_words**(1 - w) * p_emb**w`` with w ``EMBED_BLEND`` (bench/sector_embedding_probe.py, variant b).
Its weights ship as int8 (dim, divisions) with one float32 scale per division, as the words model's.
scikit-learn is needed here only; the product reads ``weights.npz`` and ``embedding.npz`` with numpy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins")]

import numpy as np  # noqa: E402

from tender_pipeline.models import TenderRecord  # noqa: E402
from tender_pipeline.sector_model import MANIFEST, MODEL_DIR, SectorModel  # noqa: E402
from tender_pipeline.sector_model.features import CHAR_GRAM, record_terms, terms  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "real"
NOTICE_WEIGHT = 3.0
TITLE_ONLY_WEIGHT = 1.0
HINT_WEIGHT = 2.0
MIN_DF = 2  # word pairs seen once are dropped; single words are kept (a CPV item named once still counts)
ALPHA = 1e-5
EPOCHS = 15
SEED = 0
FOLDS = 5
WEIGHTS = "weights.npz"
EMBEDDING = "embedding.npz"
EMBED_C = 10.0  # bench/sector_embedding_probe.py: C 10, geometric blend weight 0.5 (variant b, the document)
EMBED_BLEND = 0.5
EMBED_MAX_ITER = 2000
STATED_TYPE_FACTOR = 0.3  # a division of another type than the source states is this much less likely
# (bench/README.md, "stated procurement type": 0.1-0.5 all gain; 0.3 is mild for sources that mislabel)


def load_notices(data: Path) -> list[TenderRecord]:
    """CPV-coded notices of the UK export and the OCDS samples, through the pipeline's validation."""
    from tender_pipeline.validate import validate_files

    paths = [data / "uk_contracts_finder" / "notices.csv"]
    paths += sorted((data / "ocds_samples").rglob("*.json"))
    result = validate_files([(p, p.name) for p in paths if p.is_file()])
    records = [TenderRecord.model_validate(v["record"]) for v in result.valid]
    return [r for r in records if r.cpv_codes]


def load_code_descriptions(data: Path) -> tuple[list[str], list[str]]:
    cpv = json.loads((data / "cpv" / "cpv_en.json").read_text("utf-8"))
    return list(cpv.values()), [code[:2] for code in cpv]


def label(record: TenderRecord) -> str:
    """The first CPV code's division (the bench's first-code truth)."""
    return record.cpv_codes[0][:2]


def divisions_of(record: TenderRecord) -> list[str]:
    """Every division of the notice's CPV codes, first code's first: what it is a training example of."""
    return list(dict.fromkeys(code[:2] for code in record.cpv_codes))


class Vectorizer:
    """Vocabulary and IDF of the training documents; rows as the runtime builds them."""

    def __init__(self, docs: list[list[str]], min_df: int = MIN_DF) -> None:
        df = Counter(t for d in docs for t in set(d))
        self.vocabulary = sorted(t for t, c in df.items() if c >= min_df or " " not in t)
        self.index = {t: i for i, t in enumerate(self.vocabulary)}
        counts = np.array([df[t] for t in self.vocabulary], dtype=np.float64)
        self.idf = (np.log((1 + len(docs)) / (1 + counts)) + 1).astype(np.float32)

    def transform(self, docs: list[list[str]]):
        from scipy.sparse import csr_matrix

        rows, cols, vals = [], [], []
        for i, doc in enumerate(docs):
            counts = Counter(t for t in doc if t in self.index)
            if not counts:
                continue
            idx = [self.index[t] for t in counts]
            v = np.array([1 + math.log(c) for c in counts.values()], dtype=np.float32) * self.idf[idx]
            v /= np.linalg.norm(v)
            rows += [i] * len(idx)
            cols += idx
            vals += v.tolist()
        return csr_matrix((vals, (rows, cols)), shape=(len(docs), len(self.vocabulary)), dtype=np.float32)


def fit(docs: list[list[str]], labels: list[str], weights: np.ndarray):
    from sklearn.linear_model import SGDClassifier

    vec = Vectorizer(docs)
    clf = SGDClassifier(loss="log_loss", alpha=ALPHA, max_iter=EPOCHS, tol=None, random_state=SEED)
    clf.fit(vec.transform(docs), labels, sample_weight=weights)
    return vec, clf


def quantise(coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(terms, divisions) weights as int8 and one float32 scale per division, the division's largest
    weight mapped to 127: a step of at most 0.11, which moves a TF-IDF row's score (unit length) by ~0.03."""
    coef = np.asarray(coef, dtype=np.float32)
    scale = (np.abs(coef).max(axis=0) / 127).astype(np.float32)
    scale[scale == 0] = 1.0
    return np.round(coef / scale).astype(np.int8), scale


def shipped_probabilities(vec: Vectorizer, clf, docs: list[list[str]]) -> np.ndarray:
    """(docs, classes) probabilities as the runtime computes them from the quantised weights: one
    sigmoid per division, normalised to sum to 1 (scikit-learn's one-vs-rest ``predict_proba``)."""
    q, scale = quantise(clf.coef_.T)
    z = np.asarray(vec.transform(docs) @ (q.astype(np.float32) * scale)) + clf.intercept_.astype(np.float32)
    p = 1.0 / (1.0 + np.exp(-z))
    return p / p.sum(axis=1, keepdims=True)


def hint_words() -> list[tuple[str, str]]:
    """(word, division) for every hint word of the shipped divisions."""
    from tender_pipeline.taxonomy import load_taxonomy

    return [(w, d.code) for d in load_taxonomy("").divisions.values() for w in d.hints.split()]


def training_set(code_texts: list[str], code_labels: list[str], notices: list[TenderRecord]):
    hints = hint_words()
    code_texts = list(code_texts) + [w for w, _ in hints]
    code_labels = list(code_labels) + [c for _, c in hints]
    docs = [terms(t, "") for t in code_texts]
    labels = list(code_labels)
    weights = [1.0] * (len(code_texts) - len(hints)) + [HINT_WEIGHT] * len(hints)
    for r in notices:  # a notice coded in several divisions is an example of each, its weight shared
        divisions = divisions_of(r)
        full, title = record_terms(r), terms(r.title, "")
        for division in divisions:
            docs += [full, title]
            labels += [division, division]
            weights += [NOTICE_WEIGHT / len(divisions), TITLE_ONLY_WEIGHT / len(divisions)]
    return docs, labels, np.array(weights)


def cross_validated(code_texts: list[str], code_labels: list[str], notices: list[TenderRecord],
                    always: list[TenderRecord] | None = None, folds: int = FOLDS,
                    title_only: bool = False) -> tuple[np.ndarray, list[str]]:
    """Out-of-fold probabilities (notices, divisions) and the division codes of the columns.

    ``always`` are notices in every fold's training set (as the code descriptions are); with
    ``title_only`` the held-out notices are read from their title alone (a short-title source)."""
    from sklearn.model_selection import KFold

    classes = sorted(set(code_labels))
    probs = np.zeros((len(notices), len(classes)), dtype=np.float32)
    for train, test in KFold(folds, shuffle=True, random_state=SEED).split(notices):
        train_notices = [notices[i] for i in train] + list(always or [])
        docs, labels, weights = training_set(code_texts, code_labels, train_notices)
        vec, clf = fit(docs, labels, weights)
        read = (lambda r: terms(r.title, "")) if title_only else record_terms
        p = shipped_probabilities(vec, clf, [read(notices[i]) for i in test])
        probs[np.ix_(test, np.searchsorted(classes, clf.classes_))] = p
    return probs, classes


def is_uk(record: TenderRecord) -> bool:
    """A UK Contracts Finder notice (the cross-validated set; the OCDS samples are always trained on)."""
    return record.source == "uk-contracts-finder" and record.tender_id.startswith("uk-cf:")


def pipeline_documents(vec: Vectorizer, clf, records: list[TenderRecord]) -> list[str]:
    """The documents the pipeline embeds for ``records`` (``documents.document_text`` of the offline
    enrichment), their CPV codes hidden so the "Sector:" line is this words model's guess."""
    import tempfile

    from tender_pipeline.documents import document_text
    from tender_pipeline.enrich.offline import OfflineEnricher
    from tender_pipeline.models import EnrichedTender
    from tender_pipeline.settings import Settings
    from tender_pipeline.taxonomy import load_taxonomy

    hidden = [r.model_copy(update={"cpv_codes": []}) for r in records]
    with tempfile.TemporaryDirectory(prefix="sector-fold-") as tmp:
        write_model(Path(tmp), vec, clf, {})
        enricher = OfflineEnricher(load_taxonomy(""), model=SectorModel(Path(tmp)),
                                   min_confidence=Settings().sector_min_confidence)
        return [document_text(EnrichedTender(record=r, enrichment=e, content_hash=""))
                for r, e in zip(hidden, enricher.enrich(hidden), strict=True)]


def out_of_fold_documents(code_texts: list[str], code_labels: list[str], notices: list[TenderRecord]) -> list[str]:
    """Each notice's pipeline document, its sector line from a words model that never saw it: the UK
    notices' from their cross-validation fold's model (``cross_validated``'s folds, the OCDS samples in
    every fold's training set), the OCDS samples' from the first fold's model."""
    from sklearn.model_selection import KFold

    uk = [i for i, r in enumerate(notices) if is_uk(r)]
    others = [i for i, r in enumerate(notices) if not is_uk(r)]
    documents = [""] * len(notices)
    for k, (train, test) in enumerate(KFold(FOLDS, shuffle=True, random_state=SEED).split(uk)):
        vec, clf = fit(*training_set(code_texts, code_labels, [notices[uk[i]] for i in train]
                                     + [notices[i] for i in others]))
        read = [uk[i] for i in test] + (others if k == 0 else [])
        for i, document in zip(read, pipeline_documents(vec, clf, [notices[i] for i in read]), strict=True):
            documents[i] = document
    return documents


def fit_embedding(vectors: np.ndarray, labels: list[str], weights: np.ndarray, classes: list[str],
                  c: float = EMBED_C):
    """Multinomial logistic regression over unit embeddings: (coef (dim, classes), intercept) in
    ``classes`` order (the words model's); a division it never saw gets weight 0, intercept -1e4."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=c, max_iter=EMBED_MAX_ITER)
    lr.fit(vectors, labels, sample_weight=weights)
    cols = [list(classes).index(code) for code in lr.classes_]
    coef = np.zeros((vectors.shape[1], len(classes)), dtype=np.float32)
    intercept = np.full(len(classes), -1e4, dtype=np.float32)
    coef[:, cols], intercept[cols] = lr.coef_.T, lr.intercept_
    return coef, intercept


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def blended(p_words: np.ndarray, vectors: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
            weight: float = EMBED_BLEND) -> np.ndarray:
    """The runtime's blend: p ∝ p_words**(1 - w) * softmax(vector @ coef + intercept)**w."""
    p = p_words ** (1 - weight) * softmax(vectors @ coef + intercept) ** weight
    return p / p.sum(axis=1, keepdims=True)


def write_model(out: Path, vec: Vectorizer, clf, info: dict, embedding: tuple | None = None) -> None:
    """weights.npz and manifest.json; with ``embedding`` = (coef (dim, divisions), intercept, manifest
    entry) also embedding.npz, listed in the manifest's ``"embedding"`` and checksums."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / WEIGHTS
    coef, scale = quantise(clf.coef_.T)
    with path.open("wb") as fh:  # np.savez writes no timestamps: the same fit gives the same bytes
        np.savez_compressed(fh, vocabulary=np.array(vec.vocabulary), idf=vec.idf, coef=coef, coef_scale=scale,
                            intercept=clf.intercept_.astype(np.float32), classes=np.array(clf.classes_))
    manifest = {"model": "sector-linear-words", "weights": WEIGHTS, "divisions": [str(c) for c in clf.classes_],
                "terms": len(vec.vocabulary),
                "coef": "int8 (terms, divisions); times coef_scale, one float32 per division",
                "stated_type_factor": STATED_TYPE_FACTOR, **info}
    checksums = {WEIGHTS: hashlib.sha256(path.read_bytes()).hexdigest()}
    if embedding is not None:
        emb_coef, emb_intercept, entry = embedding
        emb_q, emb_scale = quantise(emb_coef)
        with (out / EMBEDDING).open("wb") as fh:
            np.savez_compressed(fh, coef=emb_q, coef_scale=emb_scale, intercept=emb_intercept.astype(np.float32),
                                classes=np.array(clf.classes_))
        manifest["embedding"] = {"weights": EMBEDDING, **entry}
        checksums[EMBEDDING] = hashlib.sha256((out / EMBEDDING).read_bytes()).hexdigest()
    manifest["sha256"] = checksums
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", "utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    parser.add_argument("--check", action="store_true", help="refit and compare with the shipped model")
    args = parser.parse_args()
    if not (args.data / "cpv" / "cpv_en.json").is_file():
        print(json.dumps({"error": f"{args.data} is absent: no labelled data to train on"}))
        return 1
    code_texts, code_labels = load_code_descriptions(args.data)
    notices = load_notices(args.data)
    started = time.perf_counter()
    docs, labels, weights = training_set(code_texts, code_labels, notices)
    vec, clf = fit(docs, labels, weights)
    words_seconds = time.perf_counter() - started
    from sklearn import __version__ as sklearn_version

    from tender_pipeline.embed import build_embedder
    from tender_pipeline.settings import Settings

    # the embedding head: code descriptions, hint words and every notice's out-of-fold pipeline document
    started = time.perf_counter()
    documents = out_of_fold_documents(code_texts, code_labels, notices)
    embedder = build_embedder(Settings(embed_backend="local", local_embedder="onnx", embed_threads=1))
    hints = hint_words()
    base = np.asarray(embedder.embed_documents(list(code_texts) + [w for w, _ in hints]), dtype=np.float32)
    notice_x = np.asarray(embedder.embed_documents(documents), dtype=np.float32)
    rows, emb_labels = [base], list(code_labels) + [c for _, c in hints]
    emb_weights = [1.0] * len(code_texts) + [HINT_WEIGHT] * len(hints)
    for r, x in zip(notices, notice_x, strict=True):  # each of its divisions, the notice's weight shared
        divisions = divisions_of(r)
        rows += [np.repeat(x[None], len(divisions), axis=0)]
        emb_labels += divisions
        emb_weights += [NOTICE_WEIGHT / len(divisions)] * len(divisions)
    classes = [str(c) for c in clf.classes_]
    emb_coef, emb_intercept = fit_embedding(np.vstack(rows), emb_labels, np.array(emb_weights), classes)
    embedding_seconds = time.perf_counter() - started
    n_uk = sum(map(is_uk, notices))
    entry = {"embedder": embedder.model_id, "dim": int(base.shape[1]), "blend": "geometric",
             "weight": EMBED_BLEND, "C": EMBED_C,
             "trained_on": {"cpv_code_descriptions": len(code_texts), "hint_words": len(hints),
                            "notices": len(notices), "uk_notices": n_uk, "other_notices": len(notices) - n_uk,
                            "notice_rows": len(emb_labels) - len(code_texts) - len(hints)},
             "coef": "int8 (dim, divisions); times coef_scale, one float32 per division",
             "document": "documents.document_text of the offline enrichment, CPV codes hidden; a UK notice's "
                         f"sector line from the words model of the {FOLDS}-fold cross-validation fold holding it "
                         "out, the OCDS samples' from the first fold's",
             "notice_weight": NOTICE_WEIGHT, "hint_weight": HINT_WEIGHT, "max_iter": EMBED_MAX_ITER}

    info = {"trained_on": {"cpv_code_descriptions": len(code_texts), "notices": len(notices)},
            "notice_weight": NOTICE_WEIGHT, "title_only_weight": TITLE_ONLY_WEIGHT, "hint_weight": HINT_WEIGHT,
            "notice_labels": "every division of its codes, the notice's weight shared", "char_gram": CHAR_GRAM,
            "min_df": MIN_DF, "alpha": ALPHA, "epochs": EPOCHS, "seed": SEED,
            "built_with": {"scikit-learn": sklearn_version, "numpy": np.__version__}}
    out = args.out if not args.check else Path(__import__("tempfile").mkdtemp(prefix="sector-model-"))
    write_model(out, vec, clf, info, (emb_coef, emb_intercept, entry))
    # the numpy runtime must reproduce the quantised model the figures are measured on; against
    # scikit-learn's float weights it is close, not equal (reported, not required)
    sample = [record_terms(r) for r in notices[:200]]
    ours = SectorModel(out).probabilities(sample)
    quantised = shipped_probabilities(vec, clf, sample)
    floats = clf.predict_proba(vec.transform(sample))
    same_top = float(np.mean(ours.argmax(1) == quantised.argmax(1)))
    report = {"out": str(out), "terms": len(vec.vocabulary), "max_abs_diff": float(np.abs(ours - quantised).max()),
              "same_top1": same_top, "max_abs_diff_float": float(np.abs(ours - floats).max()),
              "same_top1_float": float(np.mean(ours.argmax(1) == floats.argmax(1))),
              "bytes": (out / WEIGHTS).stat().st_size}
    # the runtime's blend with the shipped int8 embedding head against the LR's float weights, on the same
    # 200 notices (their embedded out-of-fold documents)
    with np.load(out / EMBEDDING, allow_pickle=False) as data:
        shipped_coef = data["coef"].astype(np.float32) * data["coef_scale"].astype(np.float32)
        shipped_intercept = data["intercept"].astype(np.float32)
        assert [str(c) for c in data["classes"]] == list(SectorModel(out).codes)
    p_int8 = blended(ours, notice_x[:200], shipped_coef, shipped_intercept)
    p_float = blended(ours, notice_x[:200], emb_coef, emb_intercept)
    report.update({"embedding_bytes": (out / EMBEDDING).stat().st_size,
                   "embedding_same_top1_int8_vs_float": float(np.mean(p_int8.argmax(1) == p_float.argmax(1))),
                   "embedding_max_abs_diff_int8_vs_float": float(np.abs(p_int8 - p_float).max()),
                   "blend_top1_changed_vs_words": float(np.mean(p_int8.argmax(1) != ours.argmax(1))),
                   "embedding_trained_on": entry["trained_on"],
                   "seconds": {"words": round(words_seconds, 1), "embedding": round(embedding_seconds, 1)}})
    if args.check:
        shipped = json.loads((MODEL_DIR / MANIFEST).read_text("utf-8"))["sha256"]
        fresh = json.loads((out / MANIFEST).read_text("utf-8"))["sha256"]
        report["identical_to_shipped"] = shipped == fresh
        __import__("shutil").rmtree(out)
    print(json.dumps(report))
    return 0 if same_top == 1.0 and report.get("identical_to_shipped", True) else 1


if __name__ == "__main__":
    sys.exit(main())
