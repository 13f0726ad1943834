//! Exclusive XML canonicalization without comments (`http://www.w3.org/2001/10/xml-exc-c14n#`)
//! of one element of a parsed document: the bytes a SAML signature's digest and
//! signature value are computed over.
//!
//! The parser ([`super::xml::parse`]) has already normalized line endings and attribute
//! whitespace and resolved character references, which is what the canonical form starts
//! from. Namespace declarations are emitted where they are visibly used (or named in the
//! `InclusiveNamespaces` prefix list) and not already in force in the output; comments
//! are dropped; attributes are sorted by namespace URI then local name.

use std::collections::BTreeMap;

use roxmltree::{Node, NodeId, NodeType};

const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// The canonical form of `apex`, leaving out the subtree `exclude` (the enveloped
/// `Signature`), with `inclusive` the `InclusiveNamespaces` prefix list (`#default` for
/// the default namespace).
pub(crate) fn canonicalize(apex: Node<'_, '_>, exclude: Option<NodeId>, inclusive: &[String]) -> String {
    let mut out = String::new();
    let rendered = BTreeMap::new();
    write_element(&mut out, apex, exclude, inclusive, &rendered);
    out
}

/// The prefix of the element's qualified name as written (`saml` of `<saml:Assertion`).
pub(crate) fn element_prefix<'i>(node: Node<'_, 'i>) -> Option<&'i str> {
    let text = node.document().input_text();
    let start = node.range().start + 1;
    let rest = &text[start..];
    let end = rest.find(|c: char| c.is_whitespace() || c == '>' || c == '/').unwrap_or(rest.len());
    rest[..end].split_once(':').map(|(p, _)| p)
}

fn attribute_qname<'i>(node: Node<'_, 'i>, attr: &roxmltree::Attribute<'_, 'i>) -> &'i str {
    &node.document().input_text()[attr.range_qname()]
}

fn write_element(
    out: &mut String,
    node: Node<'_, '_>,
    exclude: Option<NodeId>,
    inclusive: &[String],
    rendered: &BTreeMap<String, String>,
) {
    let prefix = element_prefix(node);
    let qname = match prefix {
        Some(p) => format!("{p}:{}", node.tag_name().name()),
        None => node.tag_name().name().to_owned(),
    };
    // Prefixes this element visibly uses ("" is the default namespace), plus the
    // inclusive ones in scope.
    let mut used: Vec<String> = vec![prefix.unwrap_or("").to_owned()];
    let attrs: Vec<_> = node.attributes().collect();
    for a in &attrs {
        if a.namespace().is_some() {
            let q = attribute_qname(node, a);
            if let Some((p, _)) = q.split_once(':') {
                used.push(p.to_owned());
            }
        }
    }
    for p in inclusive {
        let p = if p == "#default" { "" } else { p.as_str() };
        let in_scope = if p.is_empty() {
            node.default_namespace().is_some()
        } else {
            node.lookup_namespace_uri(Some(p)).is_some()
        };
        if in_scope {
            used.push(p.to_owned());
        }
    }
    let mut mine = rendered.clone();
    let mut decls: BTreeMap<String, String> = BTreeMap::new();
    for p in used {
        if p == "xml" {
            continue;
        }
        let uri = if p.is_empty() {
            node.default_namespace().unwrap_or("").to_owned()
        } else {
            node.lookup_namespace_uri(Some(&p)).unwrap_or("").to_owned()
        };
        let already = rendered.get(&p).map(String::as_str);
        if already == Some(uri.as_str()) {
            continue;
        }
        // The default namespace "undeclared" (xmlns="") is output only when an output
        // ancestor declared a non-empty one.
        if p.is_empty() && uri.is_empty() && already.is_none_or(str::is_empty) {
            continue;
        }
        decls.insert(p.clone(), uri.clone());
        mine.insert(p, uri);
    }
    out.push('<');
    out.push_str(&qname);
    for (p, uri) in &decls {
        if p.is_empty() {
            out.push_str(" xmlns=\"");
        } else {
            out.push_str(" xmlns:");
            out.push_str(p);
            out.push_str("=\"");
        }
        escape_attr(out, uri);
        out.push('"');
    }
    let mut sorted: Vec<_> = attrs
        .iter()
        .map(|a| {
            let ns = a.namespace().unwrap_or("");
            (ns, a.name(), attribute_qname(node, a), a.value())
        })
        .collect();
    sorted.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    for (ns, _, q, value) in sorted {
        out.push(' ');
        if ns == XML_NS && !q.starts_with("xml:") {
            out.push_str("xml:");
        }
        out.push_str(q);
        out.push_str("=\"");
        escape_attr(out, value);
        out.push('"');
    }
    out.push('>');
    for child in node.children() {
        if Some(child.id()) == exclude {
            continue;
        }
        match child.node_type() {
            NodeType::Element => write_element(out, child, exclude, inclusive, &mine),
            NodeType::Text => escape_text(out, child.text().unwrap_or("")),
            NodeType::PI => {
                if let Some(pi) = child.pi() {
                    out.push_str("<?");
                    out.push_str(pi.target);
                    if let Some(v) = pi.value.filter(|v| !v.is_empty()) {
                        out.push(' ');
                        out.push_str(v);
                    }
                    out.push_str("?>");
                }
            }
            NodeType::Comment | NodeType::Root => {}
        }
    }
    out.push_str("</");
    out.push_str(&qname);
    out.push('>');
}

fn escape_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c14n(xml: &str, inclusive: &[&str]) -> String {
        let doc = super::super::xml::parse(xml).unwrap();
        let inclusive: Vec<String> = inclusive.iter().map(|s| s.to_string()).collect();
        canonicalize(doc.root_element(), None, &inclusive)
    }

    #[test]
    fn unused_namespaces_are_dropped_and_used_ones_declared_once() {
        let xml = r#"<a:R xmlns:a="urn:a" xmlns:b="urn:b" xmlns:c="urn:c"><a:X b:k="1" z="2"/><c:Y/></a:R>"#;
        assert_eq!(
            c14n(xml, &[]),
            r#"<a:R xmlns:a="urn:a"><a:X xmlns:b="urn:b" z="2" b:k="1"></a:X><c:Y xmlns:c="urn:c"></c:Y></a:R>"#
        );
    }

    #[test]
    fn inclusive_prefixes_are_declared_where_in_scope() {
        let xml = r#"<a:R xmlns:a="urn:a" xmlns:b="urn:b"><a:X/></a:R>"#;
        assert_eq!(c14n(xml, &["b"]), r#"<a:R xmlns:a="urn:a" xmlns:b="urn:b"><a:X></a:X></a:R>"#);
    }

    #[test]
    fn comments_are_dropped_and_text_escaped() {
        let xml = "<R xmlns=\"urn:r\" q='a&quot;b&#9;'>x&amp;y&gt;<!-- c -->z&#13;</R>";
        assert_eq!(c14n(xml, &[]), "<R xmlns=\"urn:r\" q=\"a&quot;b&#x9;\">x&amp;y&gt;z&#xD;</R>");
    }

    #[test]
    fn a_default_namespace_undeclared_below_a_declared_one_is_written_as_empty() {
        let xml = r#"<R xmlns="urn:r"><S xmlns=""/></R>"#;
        assert_eq!(c14n(xml, &[]), r#"<R xmlns="urn:r"><S xmlns=""></S></R>"#);
    }
}
