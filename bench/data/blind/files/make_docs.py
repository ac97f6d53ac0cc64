#!/usr/bin/env python3
"""Generate the PDF and .docx documents of the fictional organisation
Quorvane Hydrometrics Ltd (Tarrowmere) used by the blind "attached file" set.

Run with the venv made for it:
    /work/blind/.venv-files/bin/python /work/blind/files/make_docs.py

Writes:
    docs/quorvane-travel-expenses-policy.pdf   (QH-FIN-07)
    docs/quorvane-leave-absence-policy.docx    (QH-HR-12)
The third document, docs/quorvane-field-equipment-procedure.md (QH-OPS-31),
is hand-written Markdown and is not produced by this script.

All text is plain ASCII so the PDF can use the built-in Helvetica font and its
text is extractable.
"""
from pathlib import Path

from docx import Document
from docx.shared import Pt
from fpdf import FPDF
from fpdf.enums import XPos, YPos

HERE = Path(__file__).resolve().parent
DOCS = HERE / "docs"

# ---------------------------------------------------------------------------
# PDF: Travel and Expenses Policy
# Each entry: ("h", heading) or ("p", paragraph) or ("b", bullet)
# ---------------------------------------------------------------------------
TRAVEL = [
    ("title", "Quorvane Hydrometrics Ltd"),
    ("subtitle", "Travel and Expenses Policy - Document QH-FIN-07, version 4.2"),
    ("p", "Effective date: 1 March 2025. Policy owner: Imelda Strachwick, Finance "
          "Controller. Next scheduled review: February 2027. This version replaces "
          "version 4.1 dated 9 September 2023."),
    ("h", "1. Purpose and scope"),
    ("p", "This policy explains how staff of Quorvane Hydrometrics Ltd book business "
          "travel and claim back the costs they incur while working away from their "
          "normal place of work. It applies to all employees and to contractors engaged "
          "for more than 90 days. Members of the Board are covered by the separate "
          "Governance Expenses Standard QH-GOV-02 and not by this document."),
    ("p", "Every claim must be for a genuine business purpose. Where this policy is "
          "silent, staff should choose the option that gives reasonable value for money "
          "and ask the Finance team before spending, not afterwards."),
    ("h", "2. Booking travel"),
    ("p", "All flights, rail tickets and hotels must be booked through the internal "
          "booking portal, Wayfarer. Our contracted travel agency is Merrowgate Travel, "
          "which operates Wayfarer on our behalf. If a booking has to be changed outside "
          "office hours, call the Merrowgate out-of-hours desk on +44 1632 960 418."),
    ("b", "Flights must be booked at least 14 days before departure."),
    ("b", "Rail journeys must be booked at least 7 days before travel, using advance "
          "fares where they are available."),
    ("b", "Economy class is the standard for any flight under 6 hours."),
    ("b", "Premium economy may be booked for flights of 6 hours or more."),
    ("b", "Business class is only allowed with the written approval of the Chief "
          "Operating Officer, Baltasar Inchcombe."),
    ("b", "First-class rail travel is not reimbursed unless it is cheaper than the "
          "standard-class fare on the same train."),
    ("p", "Bookings made late, or outside Wayfarer, must be explained in the claim. "
          "Repeated late bookings will be reported to the employee's department head."),
    ("h", "3. Accommodation"),
    ("p", "Hotels are booked through Wayfarer up to the nightly caps below, which "
          "include breakfast where the hotel offers it. The cap is per room per night, "
          "before local tourist taxes."),
    ("b", "London: GBP 189 per night."),
    ("b", "Other UK cities and towns: GBP 128 per night."),
    ("b", "Europe (including Norway and Switzerland): EUR 165 per night."),
    ("b", "Rest of the world: USD 210 per night."),
    ("p", "Short-let apartments (for example, holiday rental platforms) may only be used "
          "for stays longer than 9 consecutive nights and need the prior approval of the "
          "department head. Staying with friends or family is allowed; in that case a "
          "flat-rate 'hospitality allowance' of GBP 22 per night may be claimed without "
          "receipts, to cover a small gift or meal for the host."),
    ("h", "4. Meals and daily subsistence"),
    ("p", "Meals on UK business trips are covered by a daily subsistence allowance "
          "rather than by individual receipts. The allowance depends on how long the "
          "employee is away from the normal workplace:"),
    ("b", "UK day trip lasting more than 5 hours: GBP 14.50."),
    ("b", "UK day trip lasting more than 10 hours: GBP 26.75."),
    ("b", "UK overnight stay: GBP 41.20 for each 24-hour period."),
    ("p", "Overseas trips use a per diem, which covers all meals, drinks and local "
          "incidental costs. The per diem depends on the destination zone:"),
    ("b", "Zone A - European Union countries, Norway and Switzerland: EUR 58 per day."),
    ("b", "Zone B - United States and Canada: USD 71 per day."),
    ("b", "Zone C - all other countries: USD 49 per day."),
    ("p", "If a meal is provided free of charge (for example, by a conference or a "
          "client), the per diem is reduced by 30 percent for that day. Alcohol is never "
          "reimbursed, except as part of approved client entertainment (section 6)."),
    ("h", "5. Mileage and vehicles"),
    ("p", "Employees who use their own vehicle for business journeys can claim mileage. "
          "Journeys between home and the employee's usual workplace are commuting and "
          "cannot be claimed. The rates are:"),
    ("b", "Private car or van: 47 pence per mile for the first 8,000 business miles in "
          "the tax year, then 25 pence per mile."),
    ("b", "Motorcycle: 24 pence per mile."),
    ("b", "Bicycle: 20 pence per mile."),
    ("b", "Passenger supplement: 5 pence per passenger per mile, for colleagues carried "
          "on the same business journey."),
    ("p", "The company also keeps a pool of electric cars at the Tarrowmere campus. "
          "Pool cars are booked through Wayfarer and come with a VoltaPass charging "
          "card; no mileage can be claimed for pool-car journeys. Parking fines and "
          "speeding penalties are always the driver's personal responsibility."),
    ("h", "6. Client entertainment and gifts"),
    ("p", "Entertaining clients or partners must have a clear business reason. Any "
          "event costing more than GBP 250 in total must be approved in advance by the "
          "department head. Alcohol served during approved client entertainment is "
          "reimbursed up to GBP 35 per head. Gifts or hospitality of any value may not "
          "be offered to public officials. Every gift given or received with a value "
          "above GBP 40 must be recorded in the Gifts Register within 5 working days."),
    ("h", "7. Approval thresholds"),
    ("p", "Each expense claim is approved according to its total value:"),
    ("b", "Up to GBP 500: approved by the employee's line manager."),
    ("b", "GBP 500.01 to GBP 2,500: approved by the department head."),
    ("b", "Over GBP 2,500: approved by the Finance Controller."),
    ("p", "Nobody may approve their own claim, or a claim for a journey on which they "
          "were also a traveller."),
    ("h", "8. Submitting a claim"),
    ("p", "Claims are submitted in the Ledgerlight expenses app within 30 days of the "
          "date the expense was incurred. Claims that are more than 90 days old are "
          "rejected, unless the Finance Controller agrees that there were exceptional "
          "circumstances."),
    ("p", "An itemised receipt must be attached for every item over GBP 8. If a receipt "
          "has been lost, the employee completes the Lost Receipt Declaration, form "
          "QH-F-19. No more than two Lost Receipt Declarations may be used by one "
          "employee in a calendar quarter."),
    ("p", "Approved expenses are reimbursed through payroll, which is paid on the 26th "
          "of each month. A claim must be fully approved by the 15th of the month to be "
          "included in that month's payroll; claims approved after the 15th are paid the "
          "following month."),
    ("h", "9. Corporate cards"),
    ("p", "A Quorvane corporate card is issued to employees who travel on business more "
          "than 4 times a year. The standard monthly limit is GBP 3,000; employees in "
          "the Sales team have a monthly limit of GBP 7,500. Card statements must be "
          "reconciled in Ledgerlight within 10 working days of the statement date. The "
          "card must not be used for personal spending; if a personal charge is made by "
          "mistake, it must be repaid to the company within 5 working days."),
    ("h", "10. Cash advances and foreign currency"),
    ("p", "A cash advance of up to GBP 300 per trip can be requested for destinations "
          "where cards are not widely accepted. The request must reach Finance at least "
          "5 working days before departure. Any unspent money must be paid back within 7 "
          "days of returning. Foreign-currency spending on the corporate card is claimed "
          "at the exchange rate shown on the card statement."),
    ("h", "11. Travel insurance and safety"),
    ("p", "All business travellers are covered by the company travel insurance policy "
          "with Halvard Mutual, policy number HM-55-20931-Q. The Halvard Mutual "
          "emergency assistance line is open 24 hours a day on +44 1632 960 772. Travel "
          "to a destination rated high-risk by the insurer requires a Travel Risk "
          "Assessment, form QH-F-33, signed by the Chief Operating Officer at least 10 "
          "working days before departure. Personal holiday days added to a business trip "
          "are not covered by the company policy."),
    ("h", "12. Breaches of this policy"),
    ("p", "Claims that break this policy will be returned or reduced. Deliberately false "
          "claims are treated as gross misconduct under the Disciplinary Procedure "
          "QH-HR-04, and any overpayment will be recovered from salary."),
    ("h", "13. Contacts"),
    ("p", "Questions about this policy: expenses@quorvane.example or the Finance helpdesk "
          "on internal extension 2261. Wayfarer and booking problems: Merrowgate Travel. "
          "Insurance claims: Halvard Mutual, quoting the policy number above."),
]


class PolicyPDF(FPDF):
    def header(self):
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 6, "Quorvane Hydrometrics Ltd - QH-FIN-07 Travel and Expenses Policy v4.2",
                  new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="R")
        self.ln(2)

    def footer(self):
        self.set_y(-14)
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 8, f"Page {self.page_no()} of {{nb}} - Internal use only", align="C")


def make_pdf(path: Path) -> None:
    pdf = PolicyPDF(format="A4")
    pdf.alias_nb_pages()
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_margins(22, 18, 22)
    pdf.add_page()
    for kind, text in TRAVEL:
        if kind == "title":
            pdf.set_font("Helvetica", "B", 20)
            pdf.multi_cell(0, 10, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        elif kind == "subtitle":
            pdf.set_font("Helvetica", "B", 13)
            pdf.multi_cell(0, 8, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(3)
        elif kind == "h":
            pdf.ln(3)
            pdf.set_font("Helvetica", "B", 13)
            pdf.multi_cell(0, 8, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        elif kind == "p":
            pdf.set_font("Helvetica", "", 11)
            pdf.multi_cell(0, 6.2, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(2)
        elif kind == "b":
            pdf.set_font("Helvetica", "", 11)
            pdf.set_x(pdf.l_margin + 5)
            pdf.multi_cell(0, 6.2, "- " + text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(0.5)
    pdf.output(str(path))


# ---------------------------------------------------------------------------
# DOCX: Annual Leave and Absence Policy
# ---------------------------------------------------------------------------
LEAVE_ENTITLEMENT = [
    ("Completed years of service", "Annual leave days (full-time)", "Can buy extra days?"),
    ("Less than 3 years", "25", "Yes, up to 5"),
    ("3 to 5 years", "27", "Yes, up to 5"),
    ("6 to 9 years", "28", "Yes, up to 5"),
    ("10 years or more", "31", "Yes, up to 5"),
]

SICK_PAY = [
    ("Length of service", "Full company sick pay", "Half company sick pay"),
    ("Under 1 year", "10 working days", "None"),
    ("1 to 4 years", "30 working days", "30 working days"),
    ("5 years or more", "45 working days", "45 working days"),
]

LEAVE = [
    ("title", "Quorvane Hydrometrics Ltd"),
    ("subtitle", "Annual Leave and Absence Policy (QH-HR-12), version 3.0"),
    ("p", "Effective date: 1 January 2025. Policy owner: Saoirse Vantongeren, People "
          "Director. This policy applies to every employee of Quorvane Hydrometrics Ltd, "
          "whether based at the Tarrowmere campus, at the Fenwick Quay laboratory or "
          "working in the field. Contractors should follow the terms of their own "
          "contract."),
    ("h1", "1. The leave year"),
    ("p", "The Quorvane leave year runs from 1 April to 31 March. Holiday entitlement is "
          "calculated for the leave year, not the calendar year. Employees who join or "
          "leave part-way through a leave year receive a pro rata share of their "
          "entitlement, rounded up to the nearest half day."),
    ("h1", "2. Annual leave entitlement"),
    ("p", "Full-time employees receive the annual leave shown in the table below, which "
          "grows with completed years of service. This is in addition to the 8 public "
          "holidays, which are paid separately. Part-time employees receive a pro rata "
          "entitlement based on their contracted hours."),
    ("table", LEAVE_ENTITLEMENT),
    ("p", "The service-related increase is applied from the first day of the leave year "
          "after the relevant anniversary of the employee's start date."),
    ("h2", "2.1 Tidewater Day"),
    ("p", "Every employee also receives one extra paid day off each year, called the "
          "Tidewater Day, to be taken on or close to their birthday. The Tidewater Day "
          "must be taken within the calendar month of the birthday; it cannot be carried "
          "over, added to another month or paid out."),
    ("h2", "2.2 Winter shutdown"),
    ("p", "The Tarrowmere campus and the Fenwick Quay laboratory close between Christmas "
          "and New Year. Three days of each employee's annual leave entitlement are "
          "reserved to cover this shutdown, so these three days cannot be booked at any "
          "other time. Staff who are required to work during the shutdown, such as the "
          "on-call telemetry team, get the three days back to use later in the leave year."),
    ("h1", "3. Requesting leave"),
    ("p", "Leave is requested in the Rota section of Peoplegrove, the company HR system, "
          "and must be approved by the line manager before any travel is booked. As a "
          "rule, employees give notice of at least twice the length of the leave they are "
          "asking for; for example, a request for 3 days off needs 6 days' notice. Any "
          "request for 5 or more consecutive days must be made at least 2 weeks in advance."),
    ("p", "Employees may take up to 15 consecutive working days of leave with line "
          "manager approval. Longer blocks of leave need the approval of the relevant "
          "director as well."),
    ("h2", "3.1 Blackout periods"),
    ("p", "Members of the Field Operations team may not take annual leave during the "
          "spring calibration window, which runs from 10 to 28 February each year, or "
          "during the Annual Sensor Audit, which takes place in the first two weeks of "
          "October. Exceptions can only be agreed by the Field Operations Lead."),
    ("h1", "4. Carrying over, buying and selling leave"),
    ("p", "Up to 5 days of unused annual leave may be carried over into the next leave "
          "year. Carried-over days must be used by 30 June; any carried-over days still "
          "unused after that date are lost. Leave that could not be taken because of "
          "sickness or family leave is carried over in full and is not subject to the "
          "30 June deadline."),
    ("p", "Employees may buy up to 5 extra days of leave each leave year through salary "
          "sacrifice, spread over twelve monthly payroll deductions, and may sell up to 3 "
          "days of leave back to the company. Requests to buy or sell leave are made "
          "during the April enrolment window only."),
    ("h1", "5. Sickness absence"),
    ("p", "An employee who is too ill to work must tell their line manager by phone or "
          "message by 9:30am on the first day of absence, and keep them updated. "
          "Employees may self-certify for up to 7 calendar days. From day 8 of the "
          "absence, a fit note from a doctor is needed."),
    ("p", "Company sick pay is paid in addition to statutory sick pay, counted in any "
          "rolling 12-month period, as set out in the table below."),
    ("table", SICK_PAY),
    ("p", "After every period of sickness absence the line manager holds a short "
          "return-to-work conversation within 3 working days of the employee's return. "
          "Four or more separate absences in a rolling 12-month period trigger a "
          "wellbeing review with the People team."),
    ("h1", "6. Family leave"),
    ("p", "Employees with at least 26 weeks' service receive enhanced maternity and "
          "adoption pay: 18 weeks on full pay, followed by 8 weeks on half pay, followed "
          "by statutory pay for the rest of the leave. Partners (including paternity "
          "leave) receive 4 weeks' leave on full pay, which can be taken in one block or "
          "in two blocks of 2 weeks at any time within 56 weeks of the birth or "
          "placement. Shared parental leave is paid at the statutory rate."),
    ("h1", "7. Other paid leave"),
    ("b", "Compassionate leave: up to 5 days' paid leave on the death of a close family "
          "member (partner, child, parent or sibling), and up to 2 days for other "
          "relatives or friends."),
    ("b", "Riverkeeper days: 2 paid days each leave year for volunteering with a "
          "registered charity, preferably one working to protect rivers and wetlands."),
    ("b", "Moving house: 1 paid day each leave year."),
    ("b", "Jury service: employees are released for jury service and the company pays "
          "the difference between the court's loss-of-earnings allowance and normal pay."),
    ("b", "Medical appointments: routine appointments should be made outside core hours "
          "(10:00 to 15:30) where possible; hospital appointments and antenatal "
          "appointments are paid time off."),
    ("h1", "8. Unauthorised absence"),
    ("p", "Absence that has not been approved or reported as described above is unpaid "
          "and may be dealt with under the Disciplinary Procedure QH-HR-04."),
    ("h1", "9. Contacts"),
    ("p", "Questions about leave and absence: the People team at hr-leave@quorvane.example "
          "or on internal extension 4417. Peoplegrove access problems: the IT Service "
          "Desk on extension 3000."),
]


def make_docx(path: Path) -> None:
    doc = Document()
    style = doc.styles["Normal"]
    style.font.name = "Calibri"
    style.font.size = Pt(11)
    for kind, content in LEAVE:
        if kind == "title":
            doc.add_heading(content, level=0)
        elif kind == "subtitle":
            doc.add_heading(content, level=1)
        elif kind == "h1":
            doc.add_heading(content, level=2)
        elif kind == "h2":
            doc.add_heading(content, level=3)
        elif kind == "p":
            doc.add_paragraph(content)
        elif kind == "b":
            doc.add_paragraph(content, style="List Bullet")
        elif kind == "table":
            rows = content
            table = doc.add_table(rows=len(rows), cols=len(rows[0]))
            table.style = "Table Grid"
            for r, row in enumerate(rows):
                for c, value in enumerate(row):
                    cell = table.cell(r, c)
                    cell.text = value
                    if r == 0:
                        for run in cell.paragraphs[0].runs:
                            run.bold = True
            doc.add_paragraph("")
    doc.core_properties.title = "Annual Leave and Absence Policy QH-HR-12"
    doc.core_properties.author = "Quorvane Hydrometrics Ltd - People team"
    doc.save(str(path))


def main() -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    make_pdf(DOCS / "quorvane-travel-expenses-policy.pdf")
    make_docx(DOCS / "quorvane-leave-absence-policy.docx")
    print("wrote", DOCS / "quorvane-travel-expenses-policy.pdf")
    print("wrote", DOCS / "quorvane-leave-absence-policy.docx")


if __name__ == "__main__":
    main()
