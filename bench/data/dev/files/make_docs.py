"""Generate the PDF and .docx documents of the dev set (the .md is hand-written)."""
from pathlib import Path
from fpdf import FPDF
from docx import Document
from docx.shared import Pt

DOCS = Path(__file__).parent / "docs"
DOCS.mkdir(exist_ok=True)

# --------------------------------------------------------------------------
# 1. PDF: Leave and Absence Policy
# --------------------------------------------------------------------------
PDF_TITLE = "Corrwen Strait Ferries Ltd - Leave and Absence Policy"
PDF_BLOCKS = [
    ("meta", "Policy reference CSF-HR-014 | Version 3.2 | Effective 1 April 2024 | Owner: People Team, Harlowe Quay"),
    ("h", "1. Purpose and scope"),
    ("p", "This policy explains how holiday, sickness and other absence work for everyone employed by Corrwen Strait "
          "Ferries Ltd, whether you sail on the MV Tarrant Belle, the MV Skellan Wren or the relief vessel MV Orrin, "
          "or work ashore in the booking office, the linkspan team or the workshop at Harlowe Quay. Agency staff and "
          "contractors are covered by their own agreements and are not included."),
    ("p", "Where this policy says 'seagoing crew' it means anyone on a sea roster, including deck, engine and "
          "catering crew. 'Shore staff' means everyone else. Some rules differ between the two groups, so please "
          "read the section that applies to you."),
    ("h", "2. Annual leave entitlement"),
    ("p", "The leave year runs from 1 April to 31 March. Seagoing crew receive 33 days of paid annual leave each "
          "leave year, and this figure already includes bank holidays, because the ferries sail on most bank "
          "holidays and crew are rostered across them. Shore staff receive 25 days of paid annual leave plus the "
          "eight bank holidays observed in England and Wales."),
    ("p", "Long service is recognised. After 5 years of continuous service you gain one extra day of annual leave "
          "for each further completed year, up to a maximum of 4 extra days. Part-time staff receive a pro-rata "
          "entitlement calculated in hours rather than days, which the People Team will confirm in writing when "
          "you join or change your contracted hours."),
    ("h", "3. Booking annual leave"),
    ("p", "All leave requests are made through the Capstan HR portal. A request for 4 or more consecutive days "
          "must be submitted at least 28 days before the first day of leave. A request for 3 days or fewer needs "
          "at least 7 days' notice. Your manager will approve or decline your request within 5 working days; if "
          "you hear nothing after that time, contact the People Team."),
    ("p", "Summer is our busiest period. Between 14 July and 2 September seagoing crew may not take more than "
          "5 consecutive days of annual leave, and no more than 3 crew members from the same vessel may be on "
          "leave at the same time. Requests for the summer period are considered in the order in which they are "
          "received, so it pays to book early. Shore staff in the booking office follow the same 5-day limit "
          "during the summer period but are not subject to the per-vessel limit."),
    ("h", "4. Carrying over and buying leave"),
    ("p", "We want you to take your full holiday within the leave year. However, up to 5 days of untaken annual "
          "leave may be carried over into the next leave year, provided they are used by 30 June. Any carried-over "
          "days still untaken on 30 June are lost unless you were prevented from taking them by sickness or family "
          "leave, in which case the People Team will agree a new date with you."),
    ("p", "Employees may also buy up to 3 additional days of annual leave each leave year. The cost is deducted "
          "from salary in equal instalments over 6 months. Applications to buy leave open on 1 March and close on "
          "20 March each year."),
    ("h", "5. Reporting sickness absence"),
    ("p", "If you are unwell and cannot work, you must tell us yourself; a text from a friend or family member is "
          "not enough unless you are physically unable to call. Seagoing crew must phone the Crewing Desk on "
          "01632 960418 no later than 2 hours before their reporting time. Crew rostered on the first sailing of the "
          "day, which leaves Harlowe Quay at 06:15, should call by 21:00 the previous evening where possible, and "
          "in any case by 04:45 on the morning itself. Shore staff must call their line manager before 09:30 on "
          "the first day of absence."),
    ("p", "For the first 3 days of any absence you should make contact every day, unless your manager agrees "
          "otherwise. After that, we will agree how often we stay in touch."),
    ("p", "You may self-certify sickness for up to 7 calendar days by completing form HR-SC1 in Capstan when you "
          "return. From the eighth calendar day of absence you must provide a fit note from a GP or hospital doctor, "
          "and further fit notes must cover the whole of the absence without gaps."),
    ("h", "6. Company sick pay"),
    ("p", "Company sick pay is paid on top of Statutory Sick Pay, not in addition to it, and is calculated over a "
          "rolling 12-month period. Employees with less than 6 months' service receive Statutory Sick Pay only. "
          "Employees with between 6 months' and three years' continuous service receive 4 weeks at full pay followed "
          "by 4 weeks at half pay. Employees with three or more years' continuous service receive 13 weeks at full "
          "pay followed by 13 weeks at half pay."),
    ("p", "Company sick pay may be withheld if you do not follow the reporting rules in section 5 or fail to "
          "provide a fit note when one is required."),
    ("h", "7. Return to work and absence reviews"),
    ("p", "After every period of sickness absence, however short, your manager will hold a return-to-work "
          "conversation with you within 3 working days of your return. For seagoing crew this is usually held by "
          "the Master or the Chief Officer on board."),
    ("p", "A formal absence review is triggered by three separate absences, or by a total of 10 working days of "
          "absence, within any rolling 26-week period. A review is a supportive meeting, not a disciplinary one; you "
          "may bring a colleague or a union representative, and we may refer you to our occupational health "
          "provider, Fairlight Occupational Health."),
    ("h", "8. Compassionate leave"),
    ("p", "We understand that a death in the family is one of the hardest things anyone faces. Five days' paid "
          "compassionate leave is given on the death of a partner, child, parent, brother or sister. Two days' paid "
          "compassionate leave is given following the death of a grandparent, aunt, uncle, in-law or other relative, "
          "and the same applies for a close friend where you are organising the funeral."),
    ("p", "Parents who lose a child under the age of 18, or who suffer a stillbirth after 24 weeks of pregnancy, "
          "receive 15 days of parental bereavement leave at full pay, which may be taken at any time within 56 weeks "
          "of the death. Further unpaid leave of up to 10 days may be agreed by your manager in any of these "
          "circumstances."),
    ("h", "9. Dependants' leave and medical appointments"),
    ("p", "You may take reasonable time off to deal with an emergency involving a dependant, such as a child "
          "falling ill or a breakdown in care arrangements. The first 3 days of dependants' leave in each leave year "
          "are paid; any further dependants' leave is unpaid."),
    ("p", "Routine medical and dental appointments should be arranged outside working hours where possible. Where "
          "that cannot be done, hospital appointments are paid up to a limit of 6 hours in each leave year. "
          "Antenatal appointments are always paid and do not count towards that limit."),
    ("h", "10. Family leave"),
    ("p", "Employees who have completed 1 year of service by the fifteenth week before the expected week of "
          "childbirth receive 16 weeks of maternity leave at full pay, followed by Statutory Maternity Pay for the "
          "remainder of the paid period. Adoption leave follows the same rules as maternity leave."),
    ("p", "Fathers and partners are entitled to 3 weeks of paternity leave at full pay, which must be taken within "
          "8 weeks of the birth or placement. Shared parental leave is available in line with the statutory "
          "scheme; please speak to the People Team at least 10 weeks before you intend to start it."),
    ("h", "11. Public duties"),
    ("p", "If you are called for jury service you will receive full pay for up to 10 working days; after that "
          "you should claim loss of earnings from the court. Please show your summons to your manager as soon as "
          "you receive it, as crew rosters are set several weeks ahead."),
    ("p", "We are proud that several of our crew volunteer with the RNLI station at Skellan Point. RNLI volunteers "
          "may be released for up to 12 paid hours per month to attend launches, provided that the vessel can "
          "still sail with its minimum safe manning. Members of the reserve forces receive 2 weeks of paid leave "
          "each year for annual training camp."),
    ("h", "12. Summary of leave types"),
    ("p", "The table below summarises the main types of leave. Where the table and the text differ, the text of "
          "this policy applies."),
    ("table", [
        ["Type of leave", "Paid entitlement", "How to request / evidence"],
        ["Annual leave (seagoing crew)", "33 days incl. bank holidays", "Capstan HR portal"],
        ["Annual leave (shore staff)", "25 days plus bank holidays", "Capstan HR portal"],
        ["Compassionate leave (close family)", "5 days", "Tell your manager"],
        ["Parental bereavement leave", "15 days", "Tell your manager"],
        ["Dependants' leave", "3 days per leave year", "Tell your manager on the day"],
        ["Maternity / adoption leave", "16 weeks full pay", "Form HR-ML2, 15 weeks before due date"],
        ["Paternity leave", "3 weeks full pay", "Form HR-PL1, 15 weeks before due date"],
        ["Jury service", "Up to 10 working days", "Court summons"],
        ["RNLI launches", "Up to 12 paid hours per month", "Pager log to Crewing Desk"],
    ]),
    ("h", "13. Contacts"),
    ("p", "Questions about this policy should go to the HR Adviser, Tamsin Okafor, on 01632 960402 or through "
          "Capstan. The Crewing Desk on 01632 960418 is staffed 24 hours a day for sickness reporting by seagoing "
          "crew. This policy will next be reviewed in March 2026."),
]


class PolicyPDF(FPDF):
    def header(self):
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 6, "Corrwen Strait Ferries Ltd - CSF-HR-014", new_x="LMARGIN", new_y="NEXT", align="R")

    def footer(self):
        self.set_y(-15)
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 10, f"Page {self.page_no()}", align="C")


def make_pdf(path):
    pdf = PolicyPDF(format="A4")
    pdf.set_margins(22, 20, 22)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 8, PDF_TITLE, new_x="LMARGIN", new_y="NEXT")
    for kind, content in PDF_BLOCKS:
        if kind == "meta":
            pdf.set_font("Helvetica", "I", 9)
            pdf.multi_cell(0, 5, content, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
        elif kind == "h":
            pdf.ln(2)
            pdf.set_font("Helvetica", "B", 12.5)
            pdf.multi_cell(0, 7, content, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)
        elif kind == "p":
            pdf.set_font("Helvetica", "", 10.5)
            pdf.multi_cell(0, 5.4, content, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2.5)
        elif kind == "table":
            pdf.set_font("Helvetica", "", 9.5)
            with pdf.table(col_widths=(38, 32, 40), line_height=5.5) as table:
                for row in content:
                    r = table.row()
                    for cell in row:
                        r.cell(cell)
            pdf.ln(3)
    pdf.output(str(path))


# --------------------------------------------------------------------------
# 2. DOCX: Expenses and Travel Allowances Policy
# --------------------------------------------------------------------------
def make_docx(path):
    d = Document()
    d.styles["Normal"].font.name = "Calibri"
    d.styles["Normal"].font.size = Pt(11)
    d.add_heading("Corrwen Strait Ferries Ltd - Expenses and Travel Allowances Policy", level=0)
    d.add_paragraph("Policy reference CSF-FIN-007. Version 5.0, effective 1 May 2024. Owner: Finance Department, "
                    "Harlowe Quay.")

    d.add_heading("1. Purpose", level=1)
    d.add_paragraph(
        "This policy sets out what Corrwen Strait Ferries will pay back when you spend your own money on company "
        "business, for example when you travel to a training course at the Glasmorrow Maritime College, attend a "
        "vessel refit at the dry dock in Penwarren, or cover a shift at Skellan Point. The aim is that nobody is "
        "out of pocket for doing their job, and equally that nobody profits from a claim.")

    d.add_heading("2. Making a claim", level=1)
    d.add_paragraph(
        "All claims are made through the expenses module of the Capstan portal. You must submit a claim within "
        "45 days of the date the cost was incurred; claims older than that will only be paid in exceptional "
        "circumstances with the written agreement of the Finance Manager.")
    d.add_paragraph(
        "Your line manager approves your claim. Any single claim with a total above £750 must also be approved by "
        "the Head of Finance, Orla Penhallow. Claims approved by the 10th of the month are paid with that month's "
        "salary on the 24th. Claims approved after the 10th are paid in the following month.")

    d.add_heading("3. Receipts", level=1)
    d.add_paragraph(
        "Every item on a claim must be supported by an itemised receipt, showing VAT where VAT was charged. A card "
        "statement on its own is not a receipt. Photographs of receipts taken with the Capstan app are accepted, and "
        "you do not need to keep the paper copy once the claim has been paid.")
    d.add_paragraph(
        "If a receipt is lost, complete a Missing Receipt Declaration (form FIN-22) and attach it to the claim. A "
        "declaration can be used for items up to £35 each, and no more than two declarations will be accepted from "
        "one person in any financial year. Items above £35 without a receipt will not be reimbursed.")

    d.add_heading("4. Mileage", level=1)
    d.add_heading("4.1 Using your own vehicle", level=2)
    d.add_paragraph(
        "If you use your own car or van for business journeys, you can claim 47p per mile for the first 8,000 "
        "business miles in each tax year and 25p per mile after that. A passenger supplement of 5p per passenger "
        "per mile is paid when you give a lift to a colleague who is also travelling on company business. "
        "Motorcycles are paid at 24p per mile and bicycles at 20p per mile.")
    d.add_paragraph(
        "Your normal journey between home and your usual place of work, whether that is a vessel or an office, "
        "is commuting and cannot be claimed. If you travel directly from home to somewhere else, you may claim "
        "only the miles that exceed your normal commute.")
    d.add_heading("4.2 Insurance", level=2)
    d.add_paragraph(
        "Before using your own vehicle for work you must make sure your insurance covers business use, and upload "
        "a copy of the certificate to Capstan once a year. The company does not pay any insurance excess, "
        "breakdown cover or repair costs for private vehicles.")

    d.add_heading("5. Meals and subsistence", level=1)
    d.add_paragraph(
        "When your work takes you away from your normal place of work you may claim the actual cost of meals, up to "
        "the limits in the table below. You can only claim a meal if you meet the qualifying condition for it, and "
        "meals provided free on board or at a training venue cannot be claimed.")
    rows = [
        ("Meal or item", "Qualifying condition", "Maximum claim"),
        ("Breakfast", "Leaving home before 06:00", "£8.60"),
        ("Lunch", "Away from base for more than 5 hours, including 12:00 to 14:00", "£11.40"),
        ("Evening meal", "Returning home after 20:00", "£23.75"),
        ("Overnight incidentals", "Each night spent away from home", "£6.00"),
    ]
    t = d.add_table(rows=len(rows), cols=3)
    t.style = "Table Grid"
    for i, row in enumerate(rows):
        for j, val in enumerate(row):
            t.cell(i, j).text = val
    d.add_paragraph("")

    d.add_heading("6. Overnight stays", level=1)
    d.add_paragraph(
        "Hotels should be booked through our travel partner, Meridian Travel, quoting account code CSF-4471, so that "
        "the company pays directly. The limit for a room is £120 per night including breakfast, rising to £165 per "
        "night in London. If you choose to stay with friends or family instead, you may claim a flat £25 per night "
        "in place of hotel costs.")

    d.add_heading("7. Taxis and public transport", level=1)
    d.add_paragraph(
        "Rail travel is standard class. First class may be used only for journeys longer than 3 hours where the "
        "advance fare is cheaper than standard. Taxis are reimbursed only when no public transport is available "
        "after 22:30, or when you are carrying equipment weighing more than 15 kg.")

    d.add_heading("8. Staff crossings", level=1)
    d.add_paragraph(
        "Crossings on Corrwen Strait Ferries routes for business are free: show your staff pass at the booking "
        "office. For personal travel, employees and one partner travel free as foot passengers, and may take a car "
        "on up to 6 personal return crossings each year at 50% of the published fare.")

    d.add_heading("9. What we will not pay for", level=1)
    d.add_paragraph("The following are never reimbursed, even with a receipt:")
    for item in [
        "Alcoholic drinks of any kind, including with an evening meal",
        "Parking fines, speeding fines and congestion charge penalties",
        "Films, minibar items or laundry at a hotel, unless you are away for more than 4 nights",
        "Tips or service charges above 10% of the bill",
        "Upgrades to rail, hotel or car hire that you chose yourself",
        "Replacement of personal items lost or damaged while travelling",
    ]:
        d.add_paragraph(item, style="List Bullet")

    d.add_heading("10. Uniform and foul-weather kit", level=1)
    d.add_paragraph(
        "Seagoing crew receive a foul-weather kit allowance of £90 per year, which can be claimed once you have "
        "completed 3 months of service. Safety boots are replaced every 18 months up to a cost of £110 per pair; "
        "boots damaged at work before then will be replaced at any time on your manager's approval.")

    d.add_heading("11. Misuse", level=1)
    d.add_paragraph(
        "Claiming for costs you did not incur, or claiming the same cost twice, is treated as gross misconduct. "
        "Finance carries out random checks on one in every 20 claims. Questions about this policy should be sent to "
        "the Finance helpline on 01632 960515.")
    d.save(str(path))


if __name__ == "__main__":
    make_pdf(DOCS / "CSF-HR-014_Leave_and_Absence_Policy.pdf")
    make_docx(DOCS / "CSF-FIN-007_Expenses_and_Travel_Allowances.docx")
    print("written")
