#!/usr/bin/env python3
"""Generate the binary documents of the blind knowledge set.

Writes, into docs/ next to this script:
  - mti-travel-expenses-policy.pdf      (Marrowgate Tidal Instruments, via fpdf2)
  - vellichor-leave-and-benefits.docx   (Vellichor Seed Bank Trust, via python-docx)

Run with the venv in /work/blind/.venv:
  /work/blind/.venv/bin/python /work/blind/knowledge/make_docs.py
"""
from pathlib import Path

from docx import Document
from docx.shared import Pt
from fpdf import FPDF

DOCS = Path(__file__).resolve().parent / "docs"

# --------------------------------------------------------------------------
# PDF: Marrowgate Tidal Instruments - Travel & Expenses Policy
# Each block is ("h1"|"h2"|"p"|"bullets"|"table", content).
# Text is kept within Latin-1 so the core PDF font can encode it.
# --------------------------------------------------------------------------
PDF_BLOCKS = [
    ("h1", "Marrowgate Tidal Instruments - Travel & Expenses Policy"),
    ("p", "Policy TE-03, revision 7. Effective 1 April 2025. Owner: Finance, Kestrel Yard, "
          "Dunmarrow. Finance Business Partner: Priya Lanfear, ext. 2301."),
    ("h2", "1. Scope and principles"),
    ("p", "This policy applies to all employees of Marrowgate Tidal Instruments Ltd (MTI) who travel "
          "on company business, including visits to the Pellin Quay laboratory and to customer "
          "installation sites. Spend company money as if it were your own: choose the most "
          "economical option that still gets the job done safely."),
    ("h2", "2. Booking travel"),
    ("bullets", [
        "All flights, rail tickets and hotels are booked through the Compass Desk, run for MTI by "
        "Fairlead Travel (compass@fairlead.example, 01632 960 771).",
        "Flights must be booked at least 14 days before departure unless the trip is urgent "
        "customer support.",
        "Trips that include one or more nights away need pre-approval from your budget holder in "
        "Ledgerline before booking.",
    ]),
    ("h2", "3. Rail, air and taxis"),
    ("bullets", [
        "Rail travel is standard class; first class may be booked when the scheduled journey "
        "exceeds 3 hours.",
        "Flights under 6 hours are booked in economy. Premium economy is allowed for flights of "
        "6 hours or more. Business class needs written approval from a Director.",
        "Taxis may be claimed only when no reasonable public transport is available, or when "
        "travelling after 22:00.",
    ]),
    ("h2", "4. Using your own vehicle (mileage)"),
    ("table", [
        ["Vehicle", "Rate"],
        ["Car or van - first 10,000 business miles in the tax year", "45p per mile"],
        ["Car or van - above 10,000 business miles", "25p per mile"],
        ["Each colleague carried as a passenger", "add 3p per mile"],
        ["Motorcycle", "24p per mile"],
        ["Bicycle", "20p per mile"],
    ]),
    ("p", "Mileage is claimed for the business part of the journey only: deduct your normal "
          "commute to Kestrel Yard. You must hold business-use insurance for your vehicle."),
    ("h2", "5. Hotels"),
    ("table", [
        ["Location", "Maximum per night (incl. breakfast)"],
        ["UK, outside London", "\u00a3135"],
        ["London", "\u00a3190"],
        ["Outside the UK", "Compass Desk rate, approved by budget holder"],
    ]),
    ("h2", "6. Meals and subsistence (UK)"),
    ("bullets", [
        "Breakfast: up to \u00a39 when you leave home before 06:30.",
        "Lunch: up to \u00a312 when you are away from your normal workplace for more than 5 hours.",
        "Evening meal: up to \u00a328 per day when the journey includes an overnight stay.",
        "Alcohol is not reimbursed in any circumstances.",
    ]),
    ("h2", "7. International daily allowance"),
    ("p", "When working abroad you receive a flat daily allowance for meals and incidentals instead "
          "of claiming receipts. The hotel is paid separately."),
    ("table", [
        ["Country", "Daily allowance"],
        ["Norway", "\u00a362"],
        ["Singapore", "\u00a355"],
        ["Canada", "\u00a350"],
        ["Netherlands", "\u00a348"],
        ["Chile", "\u00a341"],
    ]),
    ("h2", "8. Client entertainment"),
    ("p", "Client entertainment is limited to \u00a360 per head, including MTI staff present. The "
          "names and organisations of all attendees must be recorded on the claim."),
    ("h2", "9. Gannet corporate card"),
    ("bullets", [
        "Frequent travellers are issued a Gannet card with a monthly limit of \u00a33,000.",
        "Cash withdrawals on the Gannet card are limited to \u00a3200 per trip.",
        "Personal spending on the card is not allowed.",
        "Card transactions must be matched to receipts in Ledgerline by the 5th of the following "
        "month.",
    ]),
    ("h2", "10. Making a claim"),
    ("bullets", [
        "Submit claims in Ledgerline within 30 days of the expense, with a photo of each receipt.",
        "Claims over \u00a3250 need approval from your budget holder.",
        "Claims approved by the 15th of the month are paid in that month's payroll.",
        "Claims submitted more than 90 days after the expense will be rejected.",
    ]),
    ("h2", "11. Travel insurance and emergencies"),
    ("p", "All business trips are covered by MTI's travel insurance, policy number MTI-TRV-55810. "
          "The 24-hour emergency assistance line is +44 20 7946 0321. Carry the policy number "
          "with you when travelling abroad."),
]


def build_pdf(path: Path) -> None:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_title("Marrowgate Tidal Instruments - Travel & Expenses Policy")
    pdf.set_author("Marrowgate Tidal Instruments Ltd")
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    for kind, content in PDF_BLOCKS:
        if kind == "h1":
            pdf.set_font("Helvetica", "B", 16)
            pdf.multi_cell(width, 8, content)
            pdf.ln(2)
        elif kind == "h2":
            pdf.ln(2)
            pdf.set_font("Helvetica", "B", 12)
            pdf.multi_cell(width, 7, content)
        elif kind == "p":
            pdf.set_font("Helvetica", "", 10.5)
            pdf.multi_cell(width, 5.5, content)
            pdf.ln(1)
        elif kind == "bullets":
            pdf.set_font("Helvetica", "", 10.5)
            for item in content:
                pdf.set_x(pdf.l_margin + 4)
                pdf.multi_cell(width - 4, 5.5, "- " + item)
            pdf.ln(1)
        elif kind == "table":
            pdf.set_font("Helvetica", "", 10)
            with pdf.table(col_widths=(2, 1), text_align="LEFT", line_height=6) as table:
                for r, row in enumerate(content):
                    cells = table.row()
                    for cell in row:
                        if r == 0:
                            pdf.set_font("Helvetica", "B", 10)
                        cells.cell(cell)
                        pdf.set_font("Helvetica", "", 10)
            pdf.ln(2)
    pdf.output(str(path))


# --------------------------------------------------------------------------
# DOCX: Vellichor Seed Bank Trust - Staff Leave & Benefits Guide
# --------------------------------------------------------------------------
DOCX_BLOCKS = [
    ("title", "Vellichor Seed Bank Trust - Staff Leave & Benefits Guide 2025"),
    ("p", "Issued by the People Officer, Marisol Quennell (ext. 142, people@vellichor.example). "
          "This guide applies to all employees of the Vellichor Seed Bank Trust on contracts of "
          "3 months or longer, at Larchspur Granary and at the Ossendyke Fen field station. "
          "Volunteers are covered by the separate Volunteer Agreement."),
    ("h1", "1. Annual leave"),
    ("bullets", [
        "Full-time staff receive 24 days of annual leave plus bank holidays.",
        "Entitlement increases by 1 day for each full 2 years of service, up to a maximum of 28 days.",
        "The leave year is the calendar year, 1 January to 31 December.",
        "Up to 4 days of unused leave may be carried over; carried-over days must be taken by 31 March.",
        "Book leave in Rootstock. Absences of more than one week need 2 weeks' notice.",
    ]),
    ("h2", "Birthday leave and Seed days"),
    ("p", "Birthday leave: one additional paid day off, to be taken during the month of your birthday."),
    ("p", "Seed days: every employee may take two paid days each year for volunteering with a "
          "registered charity or community group. Record Seed days in Rootstock under "
          "'Community leave'."),
    ("h1", "2. Sickness absence"),
    ("p", "If you are unwell, call the absence line on ext. 118 before 10:00 on your first day of "
          "absence, and record the absence in Rootstock when you are well enough. A fit note is "
          "needed after 7 calendar days. Company sick pay depends on length of service:"),
    ("table", [
        ["Length of service", "Full pay", "Half pay"],
        ["Less than 1 year", "4 weeks", "4 weeks"],
        ["1 to 3 years", "8 weeks", "8 weeks"],
        ["More than 3 years", "16 weeks", "16 weeks"],
    ]),
    ("h1", "3. Family leave"),
    ("bullets", [
        "Birth parent and adoption leave: 16 weeks at full pay, followed by 10 weeks at half pay.",
        "Partner leave: 4 weeks at full pay, to be taken within the first 6 months.",
        "Fertility treatment: up to 5 paid days a year for appointments.",
        "Dependants emergency leave: up to 3 paid days a year.",
    ]),
    ("h1", "4. Pension"),
    ("p", "Employer pension contribution: 8% of basic salary, provided you contribute at least 3%. "
          "The scheme is run by Hollyoak Mutual and you are enrolled automatically after 1 month."),
    ("h1", "5. Health and wellbeing benefits"),
    ("table", [
        ["Benefit", "What you get", "How to join"],
        ["Healthcare cash plan", "Pennyroyal Health Level 2, paid by the Trust: dental, optical "
         "(up to \u00a3150 a year), physiotherapy", "Automatic after probation"],
        ["Cycle to Work", "Bike and equipment up to \u00a32,000, repaid through salary over 12 months",
         "Apply in Rootstock, windows in March and September"],
        ["Canopy employee assistance", "Confidential helpline 0800 098 4421, 24 hours a day",
         "No sign-up needed"],
    ]),
    ("h1", "6. Sabbaticals and long service"),
    ("bullets", [
        "After 7 years' service you may request an unpaid sabbatical of up to 3 months.",
        "After 10 years' service you receive Fallow leave: 4 weeks of paid leave, to be taken "
        "within 2 years of your 10-year anniversary.",
    ]),
    ("h1", "7. Questions"),
    ("p", "Contact the People Officer on ext. 142. Policies are reviewed every January by the "
          "People Committee of the Board of Trustees."),
]


def build_docx(path: Path) -> None:
    doc = Document()
    style = doc.styles["Normal"]
    style.font.name = "Calibri"
    style.font.size = Pt(11)
    for kind, content in DOCX_BLOCKS:
        if kind == "title":
            doc.add_heading(content, level=0)
        elif kind == "h1":
            doc.add_heading(content, level=1)
        elif kind == "h2":
            doc.add_heading(content, level=2)
        elif kind == "p":
            doc.add_paragraph(content)
        elif kind == "bullets":
            for item in content:
                doc.add_paragraph(item, style="List Bullet")
        elif kind == "table":
            table = doc.add_table(rows=len(content), cols=len(content[0]))
            table.style = "Table Grid"
            for r, row in enumerate(content):
                for c, text in enumerate(row):
                    cell = table.cell(r, c)
                    cell.text = text
                    if r == 0:
                        for run in cell.paragraphs[0].runs:
                            run.bold = True
    doc.core_properties.title = "Vellichor Seed Bank Trust - Staff Leave & Benefits Guide 2025"
    doc.core_properties.author = "Vellichor Seed Bank Trust"
    doc.save(str(path))


if __name__ == "__main__":
    DOCS.mkdir(exist_ok=True)
    build_pdf(DOCS / "mti-travel-expenses-policy.pdf")
    build_docx(DOCS / "vellichor-leave-and-benefits.docx")
    print("wrote", DOCS / "mti-travel-expenses-policy.pdf")
    print("wrote", DOCS / "vellichor-leave-and-benefits.docx")
