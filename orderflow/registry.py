"""The registry a user edits: catalog, customers, carriers and departments, read from ``seeds/``.

A broken file is reported as one clear error naming the file, never a traceback.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from domain.durations import parse_duration
from domain.errors import InvalidInput, NotFound
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


# Where e-mail goes: an address with one @, a dot in its domain, nothing else.
EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


def _check_entry(item: dict[str, Any], model: type[BaseModel]) -> tuple[str, str] | None:
    """What the model itself does not refuse: unknown keys (a typo would silently drop a
    setting), malformed e-mail addresses, a department without reason codes."""
    for key in item:
        if key not in model.model_fields:
            known = ", ".join(model.model_fields)
            return key, f"unknown key (known: {known})"
    for key, value in item.items():
        if key.endswith("email") and value and not EMAIL.match(str(value)):
            return key, f"'{value}' is not an e-mail address"
    if "reason_codes" in model.model_fields:
        codes = item.get("reason_codes")
        if not isinstance(codes, dict) or not codes:
            return "reason_codes", "a department needs at least one reason code"
        for code, text in codes.items():
            if not str(text).strip():
                return f"reason_codes.{code}", "needs the words the customer reads"
    return None


def _models(
    path: Path,
    key: str,
    model: type[M],
    id_field: str,
    prepare: Callable[[dict[str, Any]], None] = lambda item: None,
) -> list[M]:
    """The entries of one seed file, strictly: any problem is refused with the file, the entry
    and the field, before the engine uses any of it."""
    out: list[M] = []
    seen: set[str] = set()
    for n, item in enumerate(_load(path, key), start=1):
        name = f"{key} #{n}" + (
            f" ({item[id_field]})" if isinstance(item.get(id_field), str) else ""
        )
        problem = _check_entry(item, model)
        if problem is None:
            try:
                prepare(item)
                entry = model.model_validate(item)
            except ValidationError as err:
                first = err.errors()[0]
                problem = (".".join(str(p) for p in first["loc"]), first["msg"])
            except InvalidInput as err:
                problem = ("", str(err))
        if problem is None:
            ident = str(getattr(entry, id_field))
            if ident in seen:
                problem = (id_field, f"'{ident}' is defined twice; each must be unique")
            seen.add(ident)
        if problem is not None:
            where, msg = problem
            raise InvalidInput(f"seed file {path}, {name}: {where + ': ' if where else ''}{msg}")
        out.append(entry)
    return out


def _parse_hold_sla(item: dict[str, Any]) -> None:
    if isinstance(item.get("hold_sla"), str):
        try:
            item["hold_sla"] = parse_duration(item["hold_sla"])
        except InvalidInput as err:
            raise InvalidInput(f"hold_sla: {err}") from None


class Registry:
    """Everything in ``seeds/``, validated on first use."""

    def __init__(self, seeds_dir: Path) -> None:
        self.dir = seeds_dir

    @cached_property
    def skus(self) -> dict[str, Sku]:
        return {s.sku: s for s in _models(self.dir / "catalog.toml", "sku", Sku, "sku")}

    @cached_property
    def locations(self) -> dict[str, Location]:
        path = self.dir / "catalog.toml"
        return {loc.location: loc for loc in _models(path, "location", Location, "location")}

    @cached_property
    def customers(self) -> dict[str, Customer]:
        path = self.dir / "customers.toml"
        return {c.customer_id: c for c in _models(path, "customer", Customer, "customer_id")}

    @cached_property
    def carriers(self) -> dict[str, Carrier]:
        path = self.dir / "carriers.toml"
        return {c.carrier_id: c for c in _models(path, "carrier", Carrier, "carrier_id")}

    @cached_property
    def departments(self) -> dict[str, Department]:
        path = self.dir / "departments.toml"
        depts = _models(path, "department", Department, "department", _parse_hold_sla)
        return {d.department: d for d in depts}

    def validate_all(self) -> None:
        for name in ("skus", "locations", "customers", "carriers", "departments"):
            getattr(self, name)

    # -- lookups with the errors users see ---------------------------------------------------

    def sku(self, sku: str) -> Sku:
        try:
            return self.skus[sku]
        except KeyError:
            raise NotFound(f"unknown SKU '{sku}'; known: {', '.join(self.skus)}") from None

    def location(self, location: str) -> Location:
        try:
            return self.locations[location]
        except KeyError:
            known = ", ".join(self.locations)
            raise NotFound(f"unknown location '{location}'; known: {known}") from None

    def customer(self, customer_id: str) -> Customer:
        try:
            return self.customers[customer_id]
        except KeyError:
            raise NotFound(
                f"unknown customer '{customer_id}'; see orderflow catalog for customer ids"
            ) from None

    def carrier(self, carrier_id: str) -> Carrier:
        try:
            return self.carriers[carrier_id]
        except KeyError:
            known = ", ".join(self.carriers)
            raise NotFound(f"unknown carrier '{carrier_id}'; known: {known}") from None

    def department(self, name: str) -> Department:
        try:
            return self.departments[name]
        except KeyError:
            known = ", ".join(self.departments)
            raise NotFound(f"unknown department '{name}'; known: {known}") from None

    def nearest_with_all(self, lines: Sequence[tuple[str, int]]) -> Location | None:
        """For --any-location: the nearest location whose seeded stock covers every line."""
        candidates = [
            loc
            for loc in self.locations.values()
            if all(loc.stock.get(sku, 0) >= qty for sku, qty in lines)
        ]
        return min(candidates, key=lambda loc: loc.distance_km) if candidates else None
