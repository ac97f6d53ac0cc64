#!/usr/bin/env python3
"""Write questions.jsonl and uncovered.jsonl, then check them against docs/.

Each covered question is (label, kind, follows_label, document, question, facts, evidence).
`evidence` (paraphrase only) is the sentence(s) of the document that answer it; it is used
here to check that the question shares no content word with them, and is NOT written out.

Run: /work/blind/.venv/bin/python build_questions.py
"""
import json
import re
import sys
from pathlib import Path

from extract import all_docs

HERE = Path(__file__).resolve().parent

PH = "mti-people-handbook.md"
IT = "mti-it-security-guide.html"
TE = "mti-travel-expenses-policy.pdf"
FA = "mti-facilities-guide.md"
TG = "mti-ferrule-tg7-product-sheet.md"
LB = "vellichor-leave-and-benefits.docx"
DW = "vellichor-digital-workplace.md"
OB = "vellichor-onboarding-faq.html"
TR = "vellichor-travel-and-field-expenses.md"
SS = "vellichor-seed-supply-service.md"

Q = [
    # ---------------- Marrowgate: people handbook ----------------
    ("ph-leave", "plain", None, PH,
     "how many days annual leave do we get at Marrowgate?",
     ["27 days", "twenty-seven days"], None),
    ("ph-leave-8y", "followup", "ph-leave", PH,
     "and once I've been there 8 years?",
     ["29 days", "twenty-nine days"], None),
    ("ph-gym", "paraphrase", None, PH,
     "hey, does MTI chip in towards my gym?",
     ["£420", "420"],
     "Each colleague has a wellbeing allowance of £420 per leave year, which can be spent on "
     "fitness clubs, exercise classes, sports kit and mindfulness apps."),
    ("ph-gym-item", "followup", "ph-gym", PH,
     "is there a cap if I buy a rowing machine with it?",
     ["£150", "150"], None),
    ("ph-sick", "paraphrase", None, PH,
     "woke up feeling rough, by what time do I have to let my boss know? I'm at Marrowgate",
     ["09:30", "9:30", "9.30"],
     "Notify your line manager by telephone no later than 09:30 on the first day of absence."),
    ("ph-dad", "paraphrase", None, PH,
     "my wife's expecting in June - how long can I be off on the company's dime as the dad? (MTI)",
     ["six weeks", "6 weeks"],
     "Second parent leave: six weeks at full pay, which may be taken in up to three blocks "
     "within 12 months of the birth or placement."),
    ("ph-payday", "plain", None, PH,
     "what date is payday at MTI?",
     ["26th", "the 26"], None),
    ("ph-carry", "plain", None, PH,
     "how many leave days can I carry over to next year at Marrowgate?",
     ["6 days", "six days"], None),
    ("ph-carry-when", "followup", "ph-carry", PH,
     "by when do I need to use them?",
     ["30 June", "June 30", "30th June", "30th of June"], None),
    ("ph-eap", "paraphrase", None, PH,
     "I'm really struggling with stress at the moment, is there someone at MTI I can talk to privately?",
     ["Anchorline", "0800 046 7712"],
     "Anchorline is available 24 hours a day on 0800 046 7712. It offers up to 6 counselling "
     "sessions per issue, legal and money guidance, all confidential."),
    ("ph-pension", "plain", None, PH,
     "quick q - how much does MTI pay into our pension?",
     ["7%", "7 per cent", "seven per cent", "7 percent"], None),
    ("ph-hybrid", "paraphrase", None, PH,
     "is there a set pattern for when I need to show up in person at MTI?",
     ["Tuesday", "Thursday", "2 days", "two days"],
     "Hybrid colleagues work from the office at least 2 days a week. Our anchor days are "
     "Tuesday and Thursday."),

    # ---------------- Marrowgate: IT & security ----------------
    ("it-refresh", "paraphrase", None, IT,
     "my work computer is really slow and old - how often does marrowgate swap them out?",
     ["four years", "4 years"],
     "Under the hardware refresh cycle, standard laptops are replaced every four years from "
     "the date of issue; engineering workstations every three years."),
    ("it-refresh-eng", "followup", "it-refresh", IT,
     "and the engineers' machines?",
     ["three years", "3 years"], None),
    ("it-helm", "plain", None, IT,
     "whats the extension for the Helm Desk?",
     ["4400"], None),
    ("it-phish", "paraphrase", None, IT,
     "got a weird mail asking for my bank details, where should I send it? (MTI)",
     ["Report Catch", "phish@marrowgate-tidal.example"],
     "Suspicious messages: use the Report Catch button in Outlook, or forward the message as "
     "an attachment to phish@marrowgate-tidal.example."),
    ("it-lost", "paraphrase", None, IT,
     "I left my MTI notebook on the train last night, how fast do I need to flag it?",
     ["one hour", "1 hour", "an hour", "60 minutes"],
     "Any lost or stolen device must be reported to the Helm Desk within one hour of discovery, "
     "so that it can be wiped remotely."),
    ("it-pass", "plain", None, IT,
     "what's the minimum passphrase length at MTI?",
     ["14 characters", "fourteen characters", "14 char"], None),
    ("it-pass-lock", "followup", "it-pass", IT,
     "how many wrong tries before it locks me out?",
     ["8 failed", "eight failed", "8 attempts", "eight attempts", "8 tries", "eight tries",
      "8 wrong", "eight wrong", "8 incorrect", "eight incorrect", "after 8", "after eight"], None),
    ("it-guest", "plain", None, IT,
     "how long is a guest wifi voucher valid for at MTI?",
     ["12 hours", "twelve hours"], None),

    # ---------------- Marrowgate: travel & expenses (PDF) ----------------
    ("te-mileage", "plain", None, TE,
     "what's the milage rate for using my own car on Marrowgate business?",
     ["45p", "45 p", "£0.45", "45 pence"], None),
    ("te-passenger", "followup", "te-mileage", TE,
     "and if I give a colleague a lift?",
     ["3p", "3 pence", "£0.03"], None),
    ("te-supper", "paraphrase", None, TE,
     "away on a site visit for marrowgate - what's the cap on my supper?",
     ["£28", "28"],
     "Evening meal: up to £28 per day when the journey includes an overnight stay."),
    ("te-rail", "paraphrase", None, TE,
     "can I upgrade my seat on a long train ride for MTI work?",
     ["3 hours", "three hours"],
     "Rail travel is standard class; first class may be booked when the scheduled journey "
     "exceeds 3 hours."),
    ("te-hotel", "plain", None, TE,
     "hotel limit per night in London at Marrowgate?",
     ["£190", "190"], None),
    ("te-claim", "plain", None, TE,
     "how long do I have to submitt an expense claim at MTI?",
     ["30 days", "thirty days"], None),
    ("te-claim-late", "followup", "te-claim", TE,
     "what happens if I'm way later than that?",
     ["90 days", "ninety days"], None),
    ("te-card", "plain", None, TE,
     "what's the monthly limit on the MTI corporate card?",
     ["£3,000", "3,000", "3000"], None),
    ("te-norway", "plain", None, TE,
     "daily allowance for a work trip to Norway at Marrowgate?",
     ["£62", "62"], None),
    ("te-insurance", "plain", None, TE,
     "what's the emergency assistance number on the MTI travel insurance?",
     ["+44 20 7946 0321", "7946 0321", "020 7946 0321"], None),

    # ---------------- Marrowgate: facilities ----------------
    ("fa-room20", "plain", None, FA,
     "which meeting room at Kestrel Yard fits 20 people?",
     ["Rockall"], None),
    ("fa-room20-no", "followup", "fa-room20", FA,
     "what's its room number?",
     ["3.01"], None),
    ("fa-muster", "paraphrase", None, FA,
     "if the fire bell rings at Kestrel Yard where should I head?",
     ["Muster Point B"],
     "In an evacuation, leave by the nearest exit and go to Muster Point B, by the flagpole in "
     "the north car park."),
    ("fa-ev", "paraphrase", None, FA,
     "can I top up my EV at the MTI office? how long can I leave it plugged in?",
     ["four hours", "4 hours"],
     "There are six electric vehicle charging bays in the car park; each charging session is "
     "limited to four hours."),
    ("fa-lunch", "plain", None, FA,
     "how much is a hot lunch in The Galley?",
     ["£3.80", "3.80"], None),
    ("fa-shuttle", "plain", None, FA,
     "what time does the shuttle to Pellin Quay leave in the morning?",
     ["08:10", "8:10", "8.10"], None),
    ("fa-shuttle-pm", "followup", "fa-shuttle", FA,
     "and the afternoon one?",
     ["13:10", "1:10", "1.10"], None),
    ("fa-visitor", "paraphrase", None, FA,
     "my mate's coming in to see me tomorrow at MTI, what do I have to sort out beforehand and by when?",
     ["16:00", "4pm", "4 pm", "4:00", "4.00"],
     "Visitors must be pre-registered in Quayside by 16:00 on the previous working day."),

    # ---------------- Marrowgate: TG-7 product sheet ----------------
    ("tg-acc", "plain", None, TG,
     "what's the accuracy of the TG-7 tide gauge?",
     ["3 mm", "3mm"], None),
    ("tg-warranty", "paraphrase", None, TG,
     "customer asking - if their TG-7 packs up, how long are they covered for free?",
     ["3 years", "three years"],
     "Warranty: 3 years standard, extendable to 5 years for £495."),
    ("tg-warranty-ext", "followup", "tg-warranty", TG,
     "can they get longer? what does that cost?",
     ["£495", "495"], None),
    ("tg-recal", "paraphrase", None, TG,
     "how often should a client send the gauge back to be re-checked?",
     ["24 months", "two years", "2 years"],
     "Recalibration is recommended every 24 months and is carried out at our Pellin Quay "
     "laboratory for £310."),
    ("tg-price", "plain", None, TG,
     "list price of a TG-7 base unit?",
     ["£6,850", "6,850", "6850"], None),

    # ---------------- Vellichor: leave & benefits (DOCX) ----------------
    ("lb-leave", "plain", None, LB,
     "how many days anual leave do Vellichor staff get?",
     ["24 days", "twenty-four days"], None),
    ("lb-leave-grow", "followup", "lb-leave", LB,
     "does that go up the longer I stay?",
     ["28 days", "maximum of 28", "max 28", "2 years", "two years"], None),
    ("lb-ivf", "paraphrase", None, LB,
     "we're starting IVF - will Vellichor give me time off for the clinic visits?",
     ["5 paid days", "five paid days", "5 days", "five days"],
     "Fertility treatment: up to 5 paid days a year for appointments."),
    ("lb-volunteer", "paraphrase", None, LB,
     "thinking of helping out at the local food bank - will the trust let me do it on company time, and for how long?",
     ["two paid days", "2 paid days", "two days", "2 days", "Seed days"],
     "Seed days: every employee may take two paid days each year for volunteering with a "
     "registered charity or community group."),
    ("lb-sick", "plain", None, LB,
     "sick pay at vellichor if ive been there more than 3 years?",
     ["16 weeks", "sixteen weeks"], None),
    ("lb-pension", "paraphrase", None, LB,
     "how much does Vellichor add to my retirement savings?",
     ["8%", "8 per cent", "eight per cent", "8 percent"],
     "Employer pension contribution: 8% of basic salary, provided you contribute at least 3%."),
    ("lb-pension-me", "followup", "lb-pension", LB,
     "and what do I have to put in myself?",
     ["3%", "3 per cent", "three per cent", "3 percent"], None),
    ("lb-cycle", "plain", None, LB,
     "whats the max for the cycle to work sceme at Vellichor?",
     ["£2,000", "2,000", "2000"], None),
    ("lb-partner", "plain", None, LB,
     "how much partner leave does Vellichor give?",
     ["4 weeks", "four weeks"], None),

    # ---------------- Vellichor: digital workplace ----------------
    ("dw-quota", "paraphrase", None, DW,
     "how much space do I get for my own stuff in the cloud at Vellichor?",
     ["50 GB", "50GB"],
     "Each member of staff has a personal Satchel area with a 50 GB quota."),
    ("dw-restore", "paraphrase", None, DW,
     "accidentally binned a spreadsheet from our group's workspace a fortnight ago, is it gone for good? (Vellichor)",
     ["35 days", "thirty-five days"],
     "Granary Drive is backed up every night at 02:00 and each backup is kept for 35 days; "
     "Sprout Desk can restore any file from that window."),
    ("dw-pass", "plain", None, DW,
     "minimum password length at Vellichor?",
     ["12 characters", "twelve characters", "12 char"], None),
    ("dw-pass-exp", "followup", "dw-pass", DW,
     "how often does it expire?",
     ["180 days"], None),
    ("dw-phone", "paraphrase", None, DW,
     "my personal mobile's basically my Vellichor handset now, can I get some cash back on the bill?",
     ["£15", "15"],
     "Staff who use their own smartphone for work (Tessera, e-mail, the GERMINA scanner app) "
     "receive a phone allowance of £15 per month, paid through payroll."),
    ("dw-germina", "plain", None, DW,
     "how do I get access to GERMINA?",
     ["DW-7"], None),
    ("dw-germina-time", "followup", "dw-germina", DW,
     "how long does approval usually take?",
     ["3 working days", "three working days", "3 days", "three days"], None),

    # ---------------- Vellichor: onboarding FAQ ----------------
    ("ob-arrive", "plain", None, OB,
     "what time should I turn up on my first day at Vellichor?",
     ["09:15", "9:15", "9.15"], None),
    ("ob-vault", "paraphrase", None, OB,
     "how long can I stay inside the freezer room in one go at Vellichor?",
     ["20 minutes", "twenty minutes"],
     "Staff may remain in the seed vault for a maximum of 20 minutes at a time, and always in pairs."),
    ("ob-vault-gear", "followup", "ob-vault", OB,
     "where do I get the warm gear for it?",
     ["G4"], None),
    ("ob-probation", "plain", None, OB,
     "how long is probation at Vellichor?",
     ["6 months", "six months"], None),
    ("ob-pay", "paraphrase", None, OB,
     "When do Vellichor wages arrive?",
     ["last working day"],
     "Salaries are paid on the last working day of each month."),
    ("ob-pay-start", "followup", "ob-pay", OB,
     "what if I start on the 20th?",
     ["following month", "next month"], None),
    ("ob-minibus", "plain", None, OB,
     "when does the minibus out to Ossendyke Fen run?",
     ["Tuesdays and Fridays", "Tuesday", "Friday", "07:45", "7:45"], None),
    ("ob-core", "paraphrase", None, OB,
     "is there a window in the day when I must be at my desk? (Vellichor)",
     ["10:00", "15:30", "3:30", "10am"],
     "Core hours are 10:00 to 15:30; outside those, you can flex your start and finish times and "
     "record them in Rootstock."),
    ("ob-training", "plain", None, OB,
     "whats the deadline for the mandatory training at Vellichor?",
     ["30 days", "thirty days"], None),

    # ---------------- Vellichor: travel & field expenses ----------------
    ("tr-mileage", "plain", None, TR,
     "what's the mileage rate at Vellichor for a car?",
     ["40p", "40 p", "£0.40", "40 pence"], None),
    ("tr-hotel", "paraphrase", None, TR,
     "what's the most the seed bank will cover for a hotel in the capital?",
     ["£150", "150"],
     "Accommodation is reimbursed up to £110 per night, or £150 per night in London and "
     "Edinburgh, including breakfast."),
    ("tr-hotel-else", "followup", "tr-hotel", TR,
     "and anywhere else?",
     ["£110", "110"], None),
    ("tr-claim", "plain", None, TR,
     "how long do I have to claim expenses at Vellichor?",
     ["2 months", "two months"], None),
    ("tr-claim-pay", "followup", "tr-claim", TR,
     "when do I have to get it in to be paid that month?",
     ["10th"], None),
    ("tr-railcard", "paraphrase", None, TR,
     "can Vellichor cover my young person's discount card for trains?",
     ["6 rail journeys", "six rail journeys", "6 journeys", "six journeys", "6 trips",
      "six trips", "6 times", "six times"],
     "The Trust will reimburse the cost of a railcard if you make at least 6 rail journeys on "
     "Trust business per year."),
    ("tr-kit", "paraphrase", None, TR,
     "my overtrousers got shredded on the last expedition - will the trust chip in for new ones?",
     ["£60", "60"],
     "Staff who join seed-collecting trips receive a field kit allowance of £60 per year towards "
     "waterproof clothing and boots."),
    ("tr-float", "plain", None, TR,
     "hi! how much cash advance can I take for a collecting expedition abroad at Vellichor?",
     ["£500", "500"], None),
    ("tr-float-back", "followup", "tr-float", TR,
     "how soon after I'm back do I have to sort it out?",
     ["14 days", "fourteen days", "two weeks", "2 weeks"], None),

    # ---------------- Vellichor: seed supply service ----------------
    ("ss-sample", "plain", None, SS,
     "how many seeds go in a standard sample we send out?",
     ["50 seeds", "fifty seeds", "50 per"], None),
    ("ss-sample-red", "followup", "ss-sample", SS,
     "and for red list ones?",
     ["25 seeds", "twenty-five seeds", "25 per"], None),
    ("ss-research", "paraphrase", None, SS,
     "a uni lab wants some of our bean lines - what do we bill them?",
     ["£18", "18"],
     "| Research institutions | 40 accessions | £18 |"),
    ("ss-commercial", "followup", "ss-research", SS,
     "what if it's a company breeding crops commercially?",
     ["£65", "65"], None),
    ("ss-intl", "plain", None, SS,
     "how long does an international seed order take to dispatch?",
     ["30 working days", "thirty working days"], None),
    ("ss-regen", "paraphrase", None, SS,
     "at what point do we regrow a batch at Vellichor because not enough of them come up?",
     ["75%", "75 per cent", "75 percent"],
     "Accessions whose viability falls below 75% are regenerated at Ossendyke Fen."),
]

UNCOVERED = [
    "Does Marrowgate have a company car scheme or a car allowance?",
    "can I bring my dog into the Kestrel Yard office?",
    "What's the notice period if I resign from Vellichor?",
    "does MTI give us private medical insurance?",
    "Do Marrowgate employees get a staff discount if they buy a TG-7 themselves?",
    "when's the Vellichor Christmas party this year?",
    "Will Vellichor pay my professional membership fee, e.g. Royal Society of Biology?",
    "am I allowed a second job on the side while working at Marrowgate?",
    "are there EV chargers at Larchspur Granary?",
    "does MTI pay anything towards home broadband when I work from home?",
    "how many seats are on the Ossendyke Fen minibus?",
    "can I expense a standing desk for my home office at Vellichor?",
    "what are the opening hours of the staff kitchen at Larchspur Granary?",
    "who's the fire warden for the second floor at Kestrel Yard?",
    "does Vellichor pay extra for working a bank holiday at the field station?",
    "is there a referral bonus if I recommend a friend for a job at MTI?",
]

STOP = set("""a an the and or but if then so of to in on at by for with from into onto about as is are
was were be been being am do does did doing done have has had having i me my mine we us our you your
he she it its they them their this that these those there here what which who whom whose when where
why how can could will would shall should may might must not no yes any some all each every either
just only also very too than up down out off over under again once get got gets s t ll ve re d m
much many more most less least one""".split())
# note: "may", "must", "one", "off", "up" etc. are treated as stopwords by the checker, but the
# questions were also written to avoid them where the evidence uses them.


def words(s):
    return [w for w in re.findall(r"[a-z0-9£%][a-z0-9£%'.-]*", s.lower())]


def content(s):
    out = set()
    for w in words(s):
        w = w.strip(".'-")
        w = re.sub(r"'s$", "", w)
        if w and w not in STOP:
            out.add(w)
    return out


def stem(w):
    for suf in ("ing", "ed", "es", "s", "ly"):
        if w.endswith(suf) and len(w) - len(suf) >= 4:
            return w[: -len(suf)]
    return w


def norm(s):
    s = s.replace("**", "").replace("`", "")
    s = re.sub(r"\s+", " ", s)
    s = re.sub(r" ([;:,.)])", r"\1", s)
    return s.strip().lower()


def main():
    docs = all_docs()
    docs_norm = {k: norm(v) for k, v in docs.items()}
    label_to_id = {}
    rows = []
    problems = []
    for i, (label, kind, follows, doc, question, facts, evidence) in enumerate(Q, 1):
        qid = f"q{i:02d}"
        label_to_id[label] = qid
        row = {"id": qid, "question": question, "facts": facts, "document": doc, "kind": kind}
        if kind == "followup":
            if follows not in label_to_id:
                problems.append(f"{qid}: follows unknown/later label {follows}")
            else:
                row["follows"] = label_to_id[follows]
        elif follows:
            problems.append(f"{qid}: non-followup has follows")
        rows.append(row)
        if doc not in docs:
            problems.append(f"{qid}: missing document {doc}")
            continue
        text = docs_norm[doc]
        if norm(facts[0]) not in text:
            problems.append(f"{qid}: first fact {facts[0]!r} not in {doc}")
        present = [f for f in facts if norm(f) in text]
        # which other documents also contain the first fact (informational)
        others = [k for k, v in docs_norm.items() if k != doc and norm(facts[0]) in v]
        if kind == "paraphrase":
            if not evidence:
                problems.append(f"{qid}: paraphrase without evidence")
            else:
                if norm(evidence) not in text:
                    problems.append(f"{qid}: evidence not found verbatim in {doc}")
                qc, ec = content(question), content(evidence)
                shared = qc & ec
                stem_shared = {stem(a) for a in qc} & {stem(b) for b in ec}
                pref = {(a, b) for a in qc for b in ec if len(a) >= 5 and len(b) >= 5 and a[:5] == b[:5]}
                if shared or stem_shared or pref:
                    problems.append(f"{qid}: paraphrase overlap {sorted(shared)} {sorted(stem_shared)} {sorted(pref)}")
                if not any(norm(f) in norm(evidence) for f in facts):
                    problems.append(f"{qid}: no fact appears in the evidence sentence")
        print(f"{qid} {kind:10s} {doc:40s} facts_in_doc={present} also_in={others}")
    with open(HERE / "questions.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    with open(HERE / "uncovered.jsonl", "w", encoding="utf-8") as f:
        for i, q in enumerate(UNCOVERED, 1):
            f.write(json.dumps({"id": f"u{i:02d}", "question": q}, ensure_ascii=False) + "\n")
    counts = {}
    for r in rows:
        counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    per_doc = {}
    for r in rows:
        per_doc[r["document"]] = per_doc.get(r["document"], 0) + 1
    print("counts:", counts, "total:", len(rows), "uncovered:", len(UNCOVERED))
    print("per document:", per_doc)
    if problems:
        print("PROBLEMS:")
        for p in problems:
            print("  ", p)
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
