"""A trip booked as a saga: flight, hotel and car, undone when a later step fails for good.

Each booking step has a compensation (``compensate=``) that cancels what it booked. Three
trips run on a SQLite file:

- ``trip-1``: everything is available and the card is good: the trip is booked and charged.
- ``trip-2``: no car is left. Renting the car fails for good (its two attempts fail), nothing
  catches that, so the workflow unwinds: the hotel and the flight are cancelled, latest
  first, and the trip ends ``failed`` with the car's error kept.
- ``trip-3``: the card is declined. The ``Try`` around the bookings and the charge catches
  ``CardDeclined``: ``Compensate()`` cancels the car, the hotel and the flight, the traveller
  is told why, and the trip ends ``finished`` on that catch path.

Every supplier call passes ``current_step().key``, which stays the same when a step or a
compensation runs again after a crash, so the suppliers book and cancel each thing once.

Run it (the SQLite file goes into the folder given, or a fresh temporary one):

    python examples/booking_saga.py [FOLDER]
    stmtflow --db sqlite:///FOLDER/trips.db show trip-2
"""

from __future__ import annotations

import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import stmtflow as sf


class NoCarsLeft(Exception):
    """The car rental has nothing to rent."""


class CardDeclined(Exception):
    """The bank refused the charge."""


class Supplier:
    """A booking API that de-duplicates on an idempotency key (as real ones do)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.held: dict[str, str] = {}
        """Booking reference by idempotency key, for the bookings not cancelled."""
        self.made = 0

    def book(self, key: str, what: str) -> str:
        if key not in self.held:
            self.made += 1
            self.held[key] = f"{self.name}-{self.made}:{what}"
        return self.held[key]

    def cancel(self, key: str) -> None:
        self.held.pop(key, None)


AIRLINE, HOTELS, CARS = Supplier("flight"), Supplier("hotel"), Supplier("car")
AT_ONCE = sf.RetryPolicy(max_attempts=2, initial_interval=timedelta(0), max_interval=timedelta(0))
"""Two attempts, the second right after the first (a real policy would wait between them)."""


def booking_key() -> str:
    """The key of the step execution a compensation undoes (its own key minus the suffix)."""
    info = sf.current_step()
    return info.key.replace(f"/{info.step}/", f"/{info.step.removesuffix('.compensate')}/")


class Trip(sf.WorkflowState):
    traveller: str
    cars_left: bool = True
    card_ok: bool = True
    flight: str = ""
    hotel: str = ""
    car: str = ""
    outcome: str = ""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Try(
                sf.Step("book_flight", self.book_flight, compensate=self.cancel_flight),
                sf.Step("book_hotel", self.book_hotel, compensate=self.cancel_hotel),
                sf.Step("rent_car", self.rent_car, compensate=self.return_car, retry=AT_ONCE),
                sf.Step("charge_card", self.charge_card),
            ).Catch(
                CardDeclined,
                sf.Compensate(),
                sf.Step("tell_traveller", self.tell_traveller),
                sf.Return(),
            ),
            sf.Step("send_itinerary", self.send_itinerary),
        )

    def book_flight(self) -> None:
        self.flight = AIRLINE.book(sf.current_step().key, f"{self.traveller} to Lisbon")

    def book_hotel(self) -> None:
        self.hotel = HOTELS.book(sf.current_step().key, "3 nights")

    def rent_car(self) -> None:
        if not self.cars_left:
            raise NoCarsLeft(f"no car left for {self.traveller}")
        self.car = CARS.book(sf.current_step().key, "compact")

    def charge_card(self) -> None:
        if not self.card_ok:
            raise CardDeclined("insufficient funds")

    def cancel_flight(self) -> None:
        AIRLINE.cancel(booking_key())
        print(f"  cancelled {self.flight}")

    def cancel_hotel(self) -> None:
        HOTELS.cancel(booking_key())
        print(f"  cancelled {self.hotel}")

    def return_car(self) -> None:
        CARS.cancel(booking_key())
        print(f"  returned {self.car}")

    def tell_traveller(self) -> None:
        error = sf.current_error()
        assert error is not None
        self.outcome = f"payment declined ({error.message}); nothing is booked"
        print(f"  told {self.traveller}: {self.outcome}")

    def send_itinerary(self) -> None:
        self.outcome = f"booked {self.flight}, {self.hotel}, {self.car}"
        print(f"  sent {self.traveller} the itinerary: {self.outcome}")


def main(folder: Path) -> None:
    db = folder / "trips.db"
    print(f"store: sqlite:///{db}\n")
    with sf.Engine(f"sqlite:///{db}", workflows=[Trip]) as engine:
        # What `stmtflow run examples/booking_saga.py:Trip` records: `stmtflow show` imports it.
        engine.store.set_target("Trip", f"{Path(__file__).resolve()}:Trip")
        trips = {
            "trip-1": {"traveller": "ada"},
            "trip-2": {"traveller": "grace", "cars_left": False},
            "trip-3": {"traveller": "alan", "card_ok": False},
        }
        for id, data in trips.items():
            print(f"{id}:")
            inst = engine.start(Trip, data, id=id)
            undone = ", ".join(c.step for c in inst.state.compensated) or "nothing"
            print(f"  -> {inst.status.value}; compensated: {undone}")
            if inst.status is sf.WorkflowStatus.FAILED:
                print(f"  error: {inst.error}")
            print()
    held = [ref for supplier in (AIRLINE, HOTELS, CARS) for ref in supplier.held.values()]
    print(f"still booked with the suppliers: {', '.join(held)}")
    assert held == ["flight-1:ada to Lisbon", "hotel-1:3 nights", "car-1:compact"]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="trips-"))
    target.mkdir(parents=True, exist_ok=True)
    main(target)
