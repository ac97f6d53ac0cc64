"""botloom's demo tool set (issue 26): three MCP servers, `shop`, `helpdesk` and `office`, with
the 14 tools of bench/data/blind/tools/catalogue.md and in-memory demo data.

Run one over stdio (what a host such as botloom starts):
    python examples/mcp/servers.py shop
or over Streamable HTTP at http://HOST:PORT/mcp:
    python examples/mcp/servers.py shop --http 8931

Read-only tools carry `readOnlyHint: true`; the others change the demo data of this process only.
"""

from __future__ import annotations

import argparse
from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

READ = ToolAnnotations(readOnlyHint=True)
WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=True)

OrderId = Annotated[
    str, Field(description='An order id such as "A-10234".', pattern=r"^A-[0-9]{5}$")
]
TicketId = Annotated[
    str, Field(description='A ticket id such as "INC-4711".', pattern=r"^INC-[0-9]{4}$")
]
Tracking = Annotated[
    str,
    Field(
        description='A carrier tracking number such as "1Z84X2K9".', pattern=r"^1Z[0-9A-Z]{4,16}$"
    ),
]
Email = Annotated[
    str, Field(description="The customer's email address.", pattern=r"^[^@ ]+@[^@ ]+\.[a-z]{2,}$")
]
Date = Annotated[str, Field(description="A date, YYYY-MM-DD.", pattern=r"^\d{4}-\d{2}-\d{2}$")]


def _orders() -> dict[str, dict]:
    return {
        "A-10234": {
            "status": "shipped",
            "items": ["trail shoes, size 42"],
            "total_eur": 89.9,
            "delivery": "2026-12-09",
            "email": "jana.novak@example.com",
            "tracking": "1Z84X2K9",
        },
        "A-20931": {
            "status": "processing",
            "items": ["rain jacket, size M"],
            "total_eur": 129.0,
            "delivery": "2026-12-12",
            "email": "jana.novak@example.com",
            "tracking": None,
        },
        "A-41200": {
            "status": "processing",
            "items": ["wool socks x3", "beanie"],
            "total_eur": 42.5,
            "delivery": "2026-12-11",
            "email": "tom.berg@example.com",
            "tracking": None,
        },
    }


def shop_server() -> MCPServer:
    """The online shop's order system."""
    orders = _orders()
    parcels = {
        "1Z84X2K9": "In transit: arrived at the Leeds depot, out for delivery on 2026-12-09."
    }
    server = MCPServer("shop", instructions="An online shop's order system.")

    def find(order_id: str) -> dict | None:
        return orders.get(order_id.strip().upper())

    @server.tool(
        annotations=READ, description="Show an order's status, items, total and delivery date."
    )
    def lookup_order(order_id: OrderId) -> str:
        order = find(order_id)
        if order is None:
            return f"No order {order_id} was found."
        return (
            f"Order {order_id.upper()}: {order['status']}; items: {', '.join(order['items'])}; "
            f"total {order['total_eur']:.2f} EUR; delivery {order['delivery']}."
        )

    @server.tool(annotations=READ, description="List a customer's most recent orders.")
    def list_orders(email: Email, limit: Annotated[int, Field(ge=1, le=20)] = 5) -> str:
        mine = [(key, o) for key, o in orders.items() if o["email"] == email.strip().lower()]
        if not mine:
            return f"No orders for {email}."
        return "\n".join(
            f"{key}: {o['status']}, {o['total_eur']:.2f} EUR" for key, o in mine[:limit]
        )

    @server.tool(
        annotations=READ, description="Where a parcel is now, from its carrier tracking number."
    )
    def track_parcel(tracking_number: Tracking) -> str:
        return parcels.get(
            tracking_number.strip().upper(), f"No parcel {tracking_number} is known."
        )

    @server.tool(annotations=WRITE, description="Cancel an order that has not shipped yet.")
    def cancel_order(order_id: OrderId, reason: str = "") -> str:
        order = find(order_id)
        if order is None:
            return f"No order {order_id} was found."
        if order["status"] == "shipped":
            return f"Order {order_id.upper()} has shipped and can no longer be cancelled."
        order["status"] = "cancelled"
        return f"Order {order_id.upper()} is cancelled." + (f" Reason: {reason}." if reason else "")

    @server.tool(
        annotations=WRITE, description="Send an order that has not shipped to a new address."
    )
    def change_delivery_address(order_id: OrderId, address: str) -> str:
        order = find(order_id)
        if order is None:
            return f"No order {order_id} was found."
        if order["status"] == "shipped":
            return f"Order {order_id.upper()} has shipped; its address can no longer change."
        order["address"] = address
        return f"Order {order_id.upper()} will be delivered to {address}."

    @server.tool(
        annotations=WRITE,
        description="Refund all or part of an order to the original payment method.",
    )
    def refund_order(order_id: OrderId, amount_eur: float | None = None) -> str:
        order = find(order_id)
        if order is None:
            return f"No order {order_id} was found."
        amount = order["total_eur"] if amount_eur is None else min(amount_eur, order["total_eur"])
        return f"Refunded {amount:.2f} EUR for order {order_id.upper()} to the original card."

    return server


def helpdesk_server() -> MCPServer:
    """The company's IT helpdesk."""
    tickets = {
        "INC-4711": {
            "title": "Laptop does not charge",
            "status": "open",
            "owner": "Priya Shah",
            "priority": "normal",
            "comments": ["Replacement charger ordered."],
        },
        "INC-3920": {
            "title": "VPN drops every hour",
            "status": "in progress",
            "owner": "Marco Rossi",
            "priority": "high",
            "comments": ["Collecting logs from the client."],
        },
    }
    outages = {"vpn": "Known outage: the VPN gateway in Frankfurt is degraded since 08:40."}
    server = MCPServer("helpdesk", instructions="The company's IT helpdesk.")

    @server.tool(
        annotations=READ, description="Show an IT ticket's status, owner and latest comment."
    )
    def get_ticket(ticket_id: TicketId) -> str:
        ticket = tickets.get(ticket_id.strip().upper())
        if ticket is None:
            return f"No ticket {ticket_id} was found."
        latest = ticket["comments"][-1] if ticket["comments"] else "none"
        return (
            f"{ticket_id.upper()} '{ticket['title']}': {ticket['status']}, owner "
            f"{ticket['owner']}, priority {ticket['priority']}; latest comment: {latest}"
        )

    @server.tool(
        annotations=READ, description="Whether an IT service is working or has a known outage."
    )
    def service_status(
        service: Literal["email", "vpn", "wifi", "printing", "teams", "sharepoint"],
    ) -> str:
        return outages.get(service, f"{service}: working normally, no known outage.")

    @server.tool(annotations=WRITE, description="Open a new IT ticket.")
    def open_ticket(
        title: Annotated[str, Field(description="What the problem is, in a few words.")],
        priority: Literal["low", "normal", "high"] = "normal",
    ) -> str:
        ticket_id = f"INC-{4800 + len(tickets)}"
        tickets[ticket_id] = {
            "title": title,
            "status": "open",
            "owner": "unassigned",
            "priority": priority,
            "comments": [],
        }
        return f"Opened {ticket_id} '{title}' with priority {priority}."

    @server.tool(annotations=WRITE, description="Add a comment to an existing ticket.")
    def add_ticket_comment(ticket_id: TicketId, comment: str) -> str:
        ticket = tickets.get(ticket_id.strip().upper())
        if ticket is None:
            return f"No ticket {ticket_id} was found."
        ticket["comments"].append(comment)
        return f"Added the comment to {ticket_id.upper()}."

    @server.tool(annotations=WRITE, description="Close a ticket as resolved.")
    def close_ticket(ticket_id: TicketId) -> str:
        ticket = tickets.get(ticket_id.strip().upper())
        if ticket is None:
            return f"No ticket {ticket_id} was found."
        ticket["status"] = "closed"
        return f"Closed {ticket_id.upper()} as resolved."

    return server


def office_server() -> MCPServer:
    """The people directory and meeting rooms."""
    people = {
        "priya shah": "Priya Shah, IT support: priya.shah@example.com, 0113 496 0101, Leeds",
        "marco rossi": "Marco Rossi, Network team: marco.rossi@example.com, 0113 496 0144, Leeds",
        "jana novak": "Jana Novak, Finance: jana.novak@example.com, 020 7946 0321, London",
    }
    bookings: dict[str, list[str]] = {"2026-12-08": ["Aurora 09:00-10:00"]}
    rooms = ("Aurora", "Borealis", "Cirrus", "Delta")
    server = MCPServer("office", instructions="People directory and meeting rooms.")

    @server.tool(
        annotations=READ,
        description="Look up a colleague's email, phone, team and office in the company directory.",
    )
    def find_colleague(name: Annotated[str, Field(description="The colleague's name.")]) -> str:
        wanted = name.strip().lower()
        found = [card for key, card in people.items() if wanted in key or key.split()[0] == wanted]
        return "\n".join(found) or f"Nobody called {name} is in the directory."

    @server.tool(annotations=READ, description="Which meeting rooms are free on a date.")
    def room_availability(date: Date) -> str:
        booked = bookings.get(date, [])
        lines = [
            f"{room}: free"
            + (
                ""
                if not any(b.startswith(room) for b in booked)
                else " except " + ", ".join(b for b in booked if b.startswith(room))
            )
            for room in rooms
        ]
        return f"Rooms on {date}:\n" + "\n".join(lines)

    @server.tool(annotations=WRITE, description="Book a meeting room.")
    def book_room(
        room: Literal["Aurora", "Borealis", "Cirrus", "Delta"],
        date: Date,
        start: Annotated[str, Field(description="HH:MM, 24 h.", pattern=r"^\d{2}:\d{2}$")],
        minutes: Annotated[int, Field(ge=15, le=240)] = 60,
    ) -> str:
        bookings.setdefault(date, []).append(f"{room} {start} ({minutes} min)")
        return f"Booked {room} on {date} at {start} for {minutes} minutes."

    return server


SERVERS = {"shop": shop_server, "helpdesk": helpdesk_server, "office": office_server}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("server", choices=sorted(SERVERS))
    parser.add_argument("--http", type=int, metavar="PORT", help="serve Streamable HTTP on PORT")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    server = SERVERS[args.server]()
    if args.http:
        server.run("streamable-http", host=args.host, port=args.http)
    else:
        server.run()


if __name__ == "__main__":
    main()
