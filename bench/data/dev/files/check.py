"""Check the dev set: every question's facts occur literally in its document's extracted text.

Rule: the FIRST string of each "facts" list is the document's own spelling and must occur
literally (case-insensitive) in the extracted text; the other strings are alternative spellings
a reply might use and are only reported. Also checks ids, kinds, counts, follow-up links and
(as a warning) content-word overlap between paraphrase questions and the answering sentence.
"""
import json, re, sys
from collections import Counter
from pathlib import Path
from pypdf import PdfReader
from docx import Document

ROOT = Path(__file__).parent
DOCS = ROOT / "docs"


def text_of(path):
    if path.suffix == ".pdf":
        return "\n".join(p.extract_text() for p in PdfReader(str(path)).pages)
    if path.suffix == ".docx":
        d = Document(str(path))
        parts = [p.text for p in d.paragraphs]
        for t in d.tables:
            for row in t.rows:
                parts.append(" | ".join(c.text for c in row.cells))
        return "\n".join(parts)
    return path.read_text(encoding="utf-8")


STOP = set("""a an the and or but if of to in on at for by with from as is are was were be been am do does did
i i'm i've i'd me my we our you your it its it's that this these those there what whats what's how when where who
which can could will would should may might get got have has had not no any some much many more most just still
up out off over into than then so about after before em them they their instead long""".split())


def words(s):
    return {w for w in re.findall(r"[a-z][a-z'\-]+", s.lower()) if w not in STOP and len(w) > 2}


def main():
    texts = {p.name: text_of(p) for p in sorted(DOCS.iterdir()) if p.is_file()}
    for name, t in texts.items():
        print(f"{name}: {len(t.split())} words extracted")
    qs = [json.loads(l) for l in (ROOT / "questions.jsonl").read_text().splitlines() if l.strip()]
    us = [json.loads(l) for l in (ROOT / "uncovered.jsonl").read_text().splitlines() if l.strip()]
    errors, notes = [], []
    ids = [q["id"] for q in qs]
    if len(set(ids)) != len(ids):
        errors.append("duplicate ids")
    prev = None
    for q in qs:
        doc = q["document"]
        if doc not in texts:
            errors.append(f"{q['id']}: unknown document {doc}")
            continue
        t = texts[doc].lower()
        tn = re.sub(r"\s+", " ", t)
        first = q["facts"][0].lower()
        if first not in t:
            where = " (only after whitespace normalisation)" if first in tn else ""
            errors.append(f"{q['id']}: first fact {q['facts'][0]!r} not literally in {doc}{where}")
        for alt in q["facts"][1:]:
            if alt.lower() not in t:
                notes.append(f"{q['id']}: alternative spelling {alt!r} not in text (allowed)")
        if q["kind"] not in ("plain", "paraphrase", "followup"):
            errors.append(f"{q['id']}: bad kind")
        if q["kind"] == "followup":
            if q.get("follows") != prev:
                errors.append(f"{q['id']}: follows {q.get('follows')} but previous question is {prev}")
            elif next(x for x in qs if x["id"] == prev)["document"] != doc:
                errors.append(f"{q['id']}: follows a question on another document")
        if q["kind"] == "paraphrase":
            # the answering line/sentence: the one containing the first fact
            src = texts[doc]
            if doc.endswith(".pdf"):  # PDF lines are layout lines: rejoin them before splitting sentences
                src = re.sub(r"\s+", " ", src)
            pat = re.compile(r"(?<![0-9a-z])" + re.escape(first), re.I)
            for unit in re.split(r"(?<=[.;])\s+|\n", src):
                if pat.search(unit):
                    shared = words(q["question"]) & words(unit)
                    if shared:
                        errors.append(f"{q['id']}: paraphrase shares {sorted(shared)} with answer sentence: {unit.strip()[:90]!r}")
                    print(f"{q['id']} answer sentence: {unit.strip()[:100]}")
                    break
            else:
                errors.append(f"{q['id']}: no answering sentence found")
        prev = q["id"]
    kinds = Counter(q["kind"] for q in qs)
    per_doc = Counter(q["document"] for q in qs)
    want = {"plain": 12, "paraphrase": 14, "followup": 10}
    if dict(kinds) != want:
        errors.append(f"kind counts {dict(kinds)} != {want}")
    if any(v != 12 for v in per_doc.values()) or len(per_doc) != 3:
        errors.append(f"per-document counts {dict(per_doc)}")
    if len(us) != 8 or len({u['id'] for u in us}) != 8:
        errors.append("uncovered.jsonl must have 8 unique ids")
    for n in notes:
        print("note:", n)
    print(f"questions: {len(qs)}  kinds: {dict(kinds)}  per document: {dict(per_doc)}  uncovered: {len(us)}")
    for e in errors:
        print("ERROR:", e)
    print("FAIL" if errors else "PASS")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
