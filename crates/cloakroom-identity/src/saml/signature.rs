//! Verifying one enveloped XML signature, and nothing more general than SAML needs.
//!
//! [`verify_enveloped`] takes an element and checks the `ds:Signature` that is its own
//! child: its one `Reference` must name that very element (`URI="#<its ID>"`), so the
//! signed bytes are found without any lookup by ID over the document. What it returns,
//! [`Signed`], is the only way to reach the element's content afterwards: the caller reads
//! the identity from the exact node whose bytes were digested, never from an element a
//! second query found (the root of every signature-wrapping attack). Only exclusive
//! canonicalization, the enveloped-signature transform, SHA-256 digests and RSA-SHA256
//! signatures are accepted; the key is one of the IdP's metadata certificates, never one
//! named by the message's own `KeyInfo`.

use base64::Engine;
use roxmltree::Node;
use rsa::{pkcs1v15::Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{
    c14n::canonicalize,
    xml::{children, only_child, DS},
    SamlError,
};

const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

/// An element whose enveloped signature verified with one of the IdP's keys.
#[derive(Clone, Copy)]
pub(crate) struct Signed<'a, 'i>(Node<'a, 'i>);

impl<'a, 'i> Signed<'a, 'i> {
    /// The element the signature covers.
    pub(crate) fn node(&self) -> Node<'a, 'i> {
        self.0
    }
}

/// The `ds:Signature` children of `node` (a SAML element has at most one).
pub(crate) fn signature_of<'a, 'i>(node: Node<'a, 'i>) -> Option<Node<'a, 'i>> {
    children(node, DS, "Signature").next()
}

/// Verifies the signature enveloped in `element` against `keys`.
pub(crate) fn verify_enveloped<'a, 'i>(
    element: Node<'a, 'i>,
    keys: &[RsaPublicKey],
) -> Result<Signed<'a, 'i>, SamlError> {
    let name = element.tag_name().name();
    let bad = |why: &str| SamlError::Signature(format!("the signature of <{name}> {why}"));
    if children(element, DS, "Signature").count() != 1 {
        return Err(bad("is missing or not alone"));
    }
    let signature = only_child(element, DS, "Signature")?;
    let id =
        element.attribute("ID").filter(|id| !id.is_empty()).ok_or_else(|| bad("covers an element without an ID"))?;
    let signed_info = only_child(signature, DS, "SignedInfo")?;
    let c14n_method = only_child(signed_info, DS, "CanonicalizationMethod")?;
    if c14n_method.attribute("Algorithm") != Some(EXC_C14N) {
        return Err(bad("uses a canonicalization other than exclusive XML canonicalization without comments"));
    }
    if only_child(signed_info, DS, "SignatureMethod")?.attribute("Algorithm") != Some(RSA_SHA256) {
        return Err(bad("uses an algorithm other than RSA-SHA256"));
    }
    // Exactly one Reference, and it names the element the signature sits in.
    let reference = only_child(signed_info, DS, "Reference")?;
    if reference.attribute("URI") != Some(&format!("#{id}")) {
        return Err(bad("does not refer to the element it is in"));
    }
    let mut enveloped = false;
    let mut inclusive = Vec::new();
    if let Some(transforms) = children(reference, DS, "Transforms").next() {
        for t in transforms.children().filter(Node::is_element) {
            match t.attribute("Algorithm") {
                Some(ENVELOPED) => enveloped = true,
                Some(EXC_C14N) => inclusive = prefix_list(t),
                _ => return Err(bad("uses a transform other than enveloped-signature and exclusive canonicalization")),
            }
        }
    }
    if !enveloped {
        return Err(bad("is not an enveloped signature"));
    }
    if only_child(reference, DS, "DigestMethod")?.attribute("Algorithm") != Some(SHA256) {
        return Err(bad("uses a digest other than SHA-256"));
    }
    let digest_value = decode(super::xml::sole_text(only_child(reference, DS, "DigestValue")?)?)
        .ok_or_else(|| bad("has a digest that is not base64"))?;
    let signature_value = decode(super::xml::sole_text(only_child(signature, DS, "SignatureValue")?)?)
        .ok_or_else(|| bad("has a value that is not base64"))?;

    let digest = Sha256::digest(canonicalize(element, Some(signature.id()), &inclusive).as_bytes());
    if !bool::from(digest[..].ct_eq(&digest_value)) {
        return Err(bad("does not match the content (it was changed after signing)"));
    }
    let signed_info_bytes = canonicalize(signed_info, None, &prefix_list(c14n_method));
    let hashed = Sha256::digest(signed_info_bytes.as_bytes());
    if keys.iter().any(|k| k.verify(Pkcs1v15Sign::new::<Sha256>(), &hashed, &signature_value).is_ok()) {
        Ok(Signed(element))
    } else {
        Err(bad("was not made by the IdP's key"))
    }
}

/// The `InclusiveNamespaces PrefixList` of a canonicalization method or transform.
fn prefix_list(method: Node<'_, '_>) -> Vec<String> {
    method
        .children()
        .filter(|c| {
            c.is_element() && c.tag_name().namespace() == Some(EXC_C14N) && c.tag_name().name() == "InclusiveNamespaces"
        })
        .filter_map(|c| c.attribute("PrefixList"))
        .flat_map(|l| l.split_ascii_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// Base64 with the line breaks and spaces XML signatures carry.
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact).ok()
}
