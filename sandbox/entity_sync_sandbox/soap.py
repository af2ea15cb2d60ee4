"""SOAP 1.1 envelopes for the sandboxes: a hardened request parser and response builders."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree  # lxml ships no stubs

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

# Requests come from anywhere on the network: no DTDs, entities, network or huge trees.
_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)


class SoapFault(Exception):
    """A vendor fault: `element` is the detail element (e.g. LoginFault), `code` the vendor code."""

    def __init__(self, element: str, code: str, message: str) -> None:
        super().__init__(message)
        self.element = element
        self.code = code
        self.message = message


class BadRequest(Exception):
    """Not a SOAP request at all: answered with a plain SOAP Client fault."""


@dataclass(frozen=True)
class Request:
    operation: str  # local name of the body's first element
    namespace: str
    body: etree._Element
    headers: dict[str, etree._Element]  # local name -> header element


def parse_request(data: bytes) -> Request:
    try:
        root = etree.fromstring(data, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise BadRequest(f"request is not XML: {exc}") from exc
    if root.getroottree().docinfo.doctype:
        raise BadRequest("DTDs are not accepted")
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise BadRequest("not a SOAP 1.1 envelope")
    body = root.find(f"{{{SOAP_ENV}}}Body")
    if body is None or len(body) == 0:
        raise BadRequest("empty SOAP body")
    operation = body[0]
    header = root.find(f"{{{SOAP_ENV}}}Header")
    headers = {}
    if header is not None:
        headers = {etree.QName(h).localname: h for h in header if isinstance(h.tag, str)}
    qname = etree.QName(operation)
    return Request(qname.localname, qname.namespace or "", operation, headers)


def child_text(element: etree._Element | None, name: str) -> str | None:
    """Text of the first child with this local name (any namespace)."""
    if element is None:
        return None
    for child in element:
        if isinstance(child.tag, str) and etree.QName(child).localname == name:
            return str(child.text or "")
    return None


def children(element: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in element if isinstance(c.tag, str) and etree.QName(c).localname == name]


def envelope(body_child: etree._Element) -> bytes:
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soapenv": SOAP_ENV, "xsi": XSI})
    body = etree.SubElement(env, f"{{{SOAP_ENV}}}Body")
    body.append(body_child)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def fault_envelope(faultcode: str, message: str, *, detail: etree._Element | None = None) -> bytes:
    fault = etree.Element(f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(fault, "faultcode").text = faultcode
    etree.SubElement(fault, "faultstring").text = message
    if detail is not None:
        etree.SubElement(fault, "detail").append(detail)
    return envelope(fault)
