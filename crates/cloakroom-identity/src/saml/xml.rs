//! Parsing untrusted SAML XML: no DTD (so no entities, no XXE, no billion laughs), a
//! bounded size and node count, and helpers that find children by namespace and name.

use roxmltree::{Document, Node, ParsingOptions};

use super::SamlError;

/// SAML 2.0 assertion namespace.
pub(crate) const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// SAML 2.0 protocol namespace.
pub(crate) const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
/// SAML 2.0 metadata namespace.
pub(crate) const MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
/// XML Signature namespace.
pub(crate) const DS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// Largest XML document accepted (a response, or the IdP's metadata).
pub const MAX_XML_BYTES: usize = 256 * 1024;
const MAX_NODES: u32 = 20_000;

/// Parses `text`, refusing document type declarations outright (roxmltree would accept
/// an empty `<!DOCTYPE x>`: SAML never needs one, so none is accepted).
pub(crate) fn parse(text: &str) -> Result<Document<'_>, SamlError> {
    if text.len() > MAX_XML_BYTES {
        return Err(SamlError::Malformed(format!("the XML is larger than {MAX_XML_BYTES} bytes")));
    }
    if text.contains("<!DOCTYPE") || text.contains("<!ENTITY") {
        return Err(SamlError::Malformed("XML with a document type declaration (DTD) is refused".into()));
    }
    let options = ParsingOptions { allow_dtd: false, nodes_limit: MAX_NODES, ..ParsingOptions::default() };
    Document::parse_with_options(text, options)
        .map_err(|e| SamlError::Malformed(format!("the XML does not parse: {e}")))
}

/// The element children of `node` named `name` in namespace `ns`.
pub(crate) fn children<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'a str,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().namespace() == Some(ns) && c.tag_name().name() == name)
}

/// The one child `ns:name` of `node`; none or several is an error.
pub(crate) fn only_child<'a, 'i>(node: Node<'a, 'i>, ns: &'a str, name: &'a str) -> Result<Node<'a, 'i>, SamlError> {
    let mut it = children(node, ns, name);
    match (it.next(), it.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => Err(SamlError::Invalid(format!("<{name}> is missing in <{}>", node.tag_name().name()))),
        (Some(_), Some(_)) => {
            Err(SamlError::Invalid(format!("<{}> has more than one <{name}>", node.tag_name().name())))
        }
    }
}

/// At most one child `ns:name`.
pub(crate) fn optional_child<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'a str,
    name: &'a str,
) -> Result<Option<Node<'a, 'i>>, SamlError> {
    let mut it = children(node, ns, name);
    match (it.next(), it.next()) {
        (one, None) => Ok(one),
        (_, Some(_)) => Err(SamlError::Invalid(format!("<{}> has more than one <{name}>", node.tag_name().name()))),
    }
}

/// The text of an element that must hold exactly one text node and nothing else: a
/// comment or a child element inside (`alice@example.com<!---->.evil.com`) is refused
/// rather than truncated or joined, so no reader can see a different value than the
/// signer signed.
pub(crate) fn sole_text<'a>(node: Node<'a, '_>) -> Result<&'a str, SamlError> {
    let mut it = node.children();
    match (it.next(), it.next()) {
        (Some(t), None) if t.is_text() => Ok(t.text().unwrap_or("")),
        (None, _) => Ok(""),
        _ => Err(SamlError::Invalid(format!(
            "<{}> must hold plain text only (no comments or elements inside)",
            node.tag_name().name()
        ))),
    }
}

/// The XML-escaped form of `s` for text and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
