"""The CRM sandbox's XML: sObjects in, upsert results, query pages and faults out."""

from __future__ import annotations

from typing import Any

from lxml import etree  # lxml ships no stubs

from entity_sync_sandbox.soap import XSI, SoapFault, fault_envelope

TNS = "urn:partner.soap.sforce.com"
ENS = "urn:sobject.partner.soap.sforce.com"
FNS = "urn:fault.partner.soap.sforce.com"


def query_page(
    element: str, page: list[dict[str, Any]], locator: str | None, *, total: int
) -> etree._Element:
    """A query/queryMore response: `done` when there is no locator, then the page's records."""
    response = etree.Element(f"{{{TNS}}}{element}", nsmap={None: TNS, "sf": ENS, "xsi": XSI})
    result = etree.SubElement(response, f"{{{TNS}}}result")
    etree.SubElement(result, f"{{{TNS}}}done").text = "true" if locator is None else "false"
    loc = etree.SubElement(result, f"{{{TNS}}}queryLocator")
    if locator is None:
        loc.set(f"{{{XSI}}}nil", "true")
    else:
        loc.text = locator
    for row in page:
        record = etree.SubElement(result, f"{{{TNS}}}records")
        record.set(f"{{{XSI}}}type", "sf:sObject")
        etree.SubElement(record, f"{{{ENS}}}type").text = row["type"]
        etree.SubElement(record, f"{{{ENS}}}Id").text = row.get("Id")
        for name, value in row.items():
            if name in ("type", "Id"):
                continue
            element_ = etree.SubElement(record, f"{{{ENS}}}{name}")
            if value is None:
                element_.set(f"{{{XSI}}}nil", "true")
            else:
                element_.text = str(value)
    etree.SubElement(result, f"{{{TNS}}}size").text = str(total)
    return response


def render_fault(fault: SoapFault) -> bytes:
    detail = etree.Element(f"{{{FNS}}}{fault.element}", nsmap={"sf": FNS, "xsi": XSI})
    detail.set(f"{{{XSI}}}type", f"sf:{fault.element}")
    etree.SubElement(detail, f"{{{FNS}}}exceptionCode").text = fault.code
    etree.SubElement(detail, f"{{{FNS}}}exceptionMessage").text = fault.message
    return fault_envelope(f"sf:{fault.code}", f"{fault.code}: {fault.message}", detail=detail)


def sobject_fields(element: etree._Element) -> tuple[str, dict[str, Any]]:
    sobject_type = ""
    fields: dict[str, Any] = {}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        if name == "type":
            sobject_type = child.text or ""
        elif name in ("Id", "fieldsToNull"):
            continue
        elif child.get(f"{{{XSI}}}nil") != "true":
            fields[name] = child.text or ""
    return sobject_type, fields


def upsert_result(
    element: etree._Element, *, created: bool, record_id: str | None, error: tuple[str, str] | None
) -> None:
    etree.SubElement(element, f"{{{TNS}}}created").text = "true" if created else "false"
    if error is not None:
        errors = etree.SubElement(element, f"{{{TNS}}}errors")
        etree.SubElement(errors, f"{{{TNS}}}message").text = error[1]
        etree.SubElement(errors, f"{{{TNS}}}statusCode").text = error[0]
    id_element = etree.SubElement(element, f"{{{TNS}}}id")
    if record_id is None:
        id_element.set(f"{{{XSI}}}nil", "true")
    else:
        id_element.text = record_id
    etree.SubElement(element, f"{{{TNS}}}success").text = "false" if error else "true"
