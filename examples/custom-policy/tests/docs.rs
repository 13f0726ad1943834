//! docs/policy.md shows the example gateway binary as it is built, so the page cannot
//! drift from the API.

const DOC: &str = include_str!("../../../docs/policy.md");
const BINARY: &str = include_str!("../examples/refund_gateway.rs");

#[test]
fn the_policy_page_shows_the_example_gateway_binary_verbatim() {
    assert!(
        DOC.contains(&format!("```rust\n{BINARY}```")),
        "docs/policy.md, \"Custom policies in your own gateway\", must quote examples/custom-policy/examples/refund_gateway.rs exactly"
    );
}
