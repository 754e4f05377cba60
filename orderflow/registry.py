"""The registry a user edits: catalog, customers, carriers and departments, read from ``seeds/``.

A broken file is reported as one clear error naming the file, never a traceback.
"""

from __future__ import annotations

import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from domain.durations import parse_duration
from domain.errors import InvalidInput, UnknownReference
from domain.registry import Carrier, Customer, Department, Location, Sku

M = TypeVar("M", bound=BaseModel)


def _load(path: Path, key: str) -> list[dict[str, Any]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"seed file {path} is missing") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InvalidInput(f"seed file {path} is not valid TOML: {err}") from None
    items = data.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidInput(f"seed file {path}: '[[{key}]]' entries expected")
    return items


def _models(path: Path, key: str, model: type[M]) -> list[M]:
    out: list[M] = []
    for n, item in enumerate(_load(path, key), start=1):
        try:
            out.append(model.model_validate(item))
        except (ValidationError, InvalidInput) as err:
            first = (
                err.errors()[0]
                if isinstance(err, ValidationError)
                else {"msg": str(err), "loc": ()}
            )
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidInput(
                f"seed file {path}, {key} #{n}: {where + ': ' if where else ''}{first['msg']}"
            ) from None
    return out


class Registry:
    """Everything in ``seeds/``, validated on first use."""

    def __init__(self, seeds_dir: Path) -> None:
        self.dir = seeds_dir

    @cached_property
    def skus(self) -> dict[str, Sku]:
        return {s.sku: s for s in _models(self.dir / "catalog.toml", "sku", Sku)}

    @cached_property
    def locations(self) -> dict[str, Location]:
        return {
            loc.location: loc for loc in _models(self.dir / "catalog.toml", "location", Location)
        }

    @cached_property
    def customers(self) -> dict[str, Customer]:
        return {
            c.customer_id: c for c in _models(self.dir / "customers.toml", "customer", Customer)
        }

    @cached_property
    def carriers(self) -> dict[str, Carrier]:
        return {c.carrier_id: c for c in _models(self.dir / "carriers.toml", "carrier", Carrier)}

    @cached_property
    def departments(self) -> dict[str, Department]:
        path = self.dir / "departments.toml"
        items = _load(path, "department")
        for n, item in enumerate(items, start=1):
            if isinstance(item.get("hold_sla"), str):
                try:
                    item["hold_sla"] = parse_duration(item["hold_sla"])
                except InvalidInput as err:
                    raise InvalidInput(
                        f"seed file {path}, department #{n}: hold_sla: {err}"
                    ) from None
        out: dict[str, Department] = {}
        for n, item in enumerate(items, start=1):
            try:
                dept = Department.model_validate(item)
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise InvalidInput(
                    f"seed file {path}, department #{n}: {where}: {first['msg']}"
                ) from None
            out[dept.department] = dept
        return out

    def validate_all(self) -> None:
        for name in ("skus", "locations", "customers", "carriers", "departments"):
            getattr(self, name)

    # -- lookups with the errors users see ---------------------------------------------------

    def sku(self, sku: str) -> Sku:
        try:
            return self.skus[sku]
        except KeyError:
            raise UnknownReference(f"unknown SKU '{sku}'; known: {', '.join(self.skus)}") from None

    def location(self, location: str) -> Location:
        try:
            return self.locations[location]
        except KeyError:
            known = ", ".join(self.locations)
            raise UnknownReference(f"unknown location '{location}'; known: {known}") from None

    def customer(self, customer_id: str) -> Customer:
        try:
            return self.customers[customer_id]
        except KeyError:
            raise UnknownReference(
                f"unknown customer '{customer_id}'; see orderflow catalog for customer ids"
            ) from None

    def carrier(self, carrier_id: str) -> Carrier:
        try:
            return self.carriers[carrier_id]
        except KeyError:
            known = ", ".join(self.carriers)
            raise UnknownReference(f"unknown carrier '{carrier_id}'; known: {known}") from None

    def department(self, name: str) -> Department:
        try:
            return self.departments[name]
        except KeyError:
            known = ", ".join(self.departments)
            raise UnknownReference(f"unknown department '{name}'; known: {known}") from None

    def nearest_with_stock(self, sku: str, qty: int) -> Location | None:
        """For --any-location: the nearest location whose seeded stock covers the order."""
        candidates = [loc for loc in self.locations.values() if loc.stock.get(sku, 0) >= qty]
        return min(candidates, key=lambda loc: loc.distance_km) if candidates else None
