"""The types a predict route's input fields can have: one enum, read by the config loader,
the route's decoder, the cross-checks, the V2 codec and the OpenAPI document."""

from __future__ import annotations

import enum
from typing import Any


class FieldType(enum.StrEnum):
    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    LIST_STR = "list[str]"
    LIST_INT = "list[int]"
    LIST_FLOAT = "list[float]"

    @property
    def is_list(self) -> bool:
        return self.value.startswith("list[")

    @property
    def element(self) -> FieldType:
        """The scalar type of one element: INT for ``list[int]``, itself for a scalar."""
        return FieldType(self.value[5:-1]) if self.is_list else self

    @property
    def python(self) -> Any:
        """The Python type msgspec decodes the field into."""
        return _PYTHON[self]

    def admits(self, value: Any) -> bool:
        """Whether a Python value fits the field (an int fits a float; a bool fits only a bool)."""
        if self.is_list:
            return isinstance(value, list) and all(self.element.admits(v) for v in value)
        if isinstance(value, bool):
            return self is FieldType.BOOL
        return isinstance(value, _ELEMENT[self])


_PYTHON: dict[FieldType, Any] = {
    FieldType.STR: str,
    FieldType.INT: int,
    FieldType.FLOAT: float,
    FieldType.BOOL: bool,
    FieldType.LIST_STR: list[str],
    FieldType.LIST_INT: list[int],
    FieldType.LIST_FLOAT: list[float],
}
_ELEMENT: dict[FieldType, tuple[type, ...]] = {
    FieldType.STR: (str,),
    FieldType.INT: (int,),
    FieldType.FLOAT: (int, float),
    FieldType.BOOL: (bool,),
}
