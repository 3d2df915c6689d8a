//! A self-contained HTML reference page rendered from the OpenAPI document.
//!
//! No scripts, styles or fonts from anywhere (no network, and no third party learns who reads
//! the docs); plain semantic HTML that the strict CSP allows.

use serde_json::Value;
use std::fmt::Write;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Renders the page for `doc` (an OpenAPI document as JSON).
pub(crate) fn render(doc: &Value) -> String {
    let title = esc(doc["info"]["title"].as_str().unwrap_or("API"));
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head><body>\n<header><h1>{title}</h1><p>{}</p>\
         <p>Machine-readable: <a href=\"/api/openapi.json\">openapi.json</a> (OpenAPI {}).</p></header>\n<main>\n",
        esc(doc["info"]["description"].as_str().unwrap_or("")),
        esc(doc["openapi"].as_str().unwrap_or("")),
    );
    out.push_str("<nav><h2>Operations</h2><ul>\n");
    for (path, method, op) in operations(doc) {
        let _ = writeln!(
            out,
            "<li><a href=\"#{}\"><code>{} {}</code></a> {}</li>",
            anchor(method, path),
            method.to_uppercase(),
            esc(path),
            esc(op["summary"].as_str().unwrap_or("")),
        );
    }
    out.push_str("</ul></nav>\n");
    for (path, method, op) in operations(doc) {
        operation(&mut out, path, method, op);
    }
    schemas(&mut out, doc);
    out.push_str("</main></body></html>\n");
    out
}

fn operations(doc: &Value) -> Vec<(&str, &str, &Value)> {
    let mut ops = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in METHODS {
                if item[method].is_object() {
                    ops.push((path.as_str(), method, &item[method]));
                }
            }
        }
    }
    ops
}

fn operation(out: &mut String, path: &str, method: &str, op: &Value) {
    let _ = write!(
        out,
        "<section id=\"{}\"><h2><code>{} {}</code></h2>\n<p><strong>{}</strong></p>",
        anchor(method, path),
        method.to_uppercase(),
        esc(path),
        esc(op["summary"].as_str().unwrap_or("")),
    );
    if let Some(d) = op["description"].as_str() {
        let _ = write!(out, "<p>{}</p>", esc(d));
    }
    if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
        out.push_str("<p>Requires <code>Authorization: Bearer &lt;access token&gt;</code>.</p>");
    }
    if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
        out.push_str(
            "\n<h3>Parameters</h3><table><thead><tr><th>Name</th><th>In</th><th>Type</th>\
             <th>Required</th><th>Description</th></tr></thead><tbody>\n",
        );
        for p in params {
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(p["name"].as_str().unwrap_or("")),
                esc(p["in"].as_str().unwrap_or("")),
                type_label(&p["schema"]),
                if p["required"].as_bool().unwrap_or(false) {
                    "yes"
                } else {
                    "no"
                },
                esc(p["description"].as_str().unwrap_or("")),
            );
        }
        out.push_str("</tbody></table>");
    }
    if op["requestBody"].is_object() {
        let body = &op["requestBody"];
        let _ = write!(
            out,
            "\n<h3>Request body</h3><p>{} {}</p>",
            content_label(&body["content"]),
            if body["required"].as_bool().unwrap_or(false) {
                "(required)"
            } else {
                "(optional)"
            }
        );
    }
    out.push_str(
        "\n<h3>Responses</h3><table><thead><tr><th>Status</th><th>Description</th>\
         <th>Body</th></tr></thead><tbody>\n",
    );
    if let Some(responses) = op["responses"].as_object() {
        for (status, r) in responses {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(status),
                esc(r["description"].as_str().unwrap_or("")),
                content_label(&r["content"]),
            );
        }
    }
    out.push_str("</tbody></table></section>\n");
}

fn schemas(out: &mut String, doc: &Value) {
    let Some(schemas) = doc["components"]["schemas"].as_object() else {
        return;
    };
    out.push_str("<section><h2>Schemas</h2>\n");
    for (name, schema) in schemas {
        let _ = write!(out, "<h3 id=\"schema-{0}\">{0}</h3>", esc(name));
        if let Some(d) = schema["description"].as_str() {
            let _ = write!(out, "<p>{}</p>", esc(d));
        }
        if let Some(props) = schema["properties"].as_object() {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            out.push_str(
                "<table><thead><tr><th>Field</th><th>Type</th><th>Required</th>\
                 <th>Description</th></tr></thead><tbody>\n",
            );
            for (field, s) in props {
                let _ = writeln!(
                    out,
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(field),
                    type_label(s),
                    if required.contains(&field.as_str()) {
                        "yes"
                    } else {
                        "no"
                    },
                    esc(s["description"].as_str().unwrap_or("")),
                );
            }
            out.push_str("</tbody></table>\n");
        } else {
            let _ = writeln!(out, "<p>{}</p>", type_label(schema));
        }
    }
    out.push_str("</section>\n");
}

fn content_label(content: &Value) -> String {
    let Some(map) = content.as_object() else {
        return String::new();
    };
    map.iter()
        .map(|(ct, c)| format!("<code>{}</code> {}", esc(ct), type_label(&c["schema"])))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A short, linked description of a schema's type.
fn type_label(s: &Value) -> String {
    if let Some(r) = s["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{0}\">{0}</a>", esc(name));
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(alts) = s[key].as_array() {
            return alts.iter().map(type_label).collect::<Vec<_>>().join(" | ");
        }
    }
    if let Some(values) = s["enum"].as_array() {
        return values
            .iter()
            .map(|v| match v {
                Value::String(v) => format!("<code>{}</code>", esc(v)),
                other => esc(&other.to_string()),
            })
            .collect::<Vec<_>>()
            .join(" | ");
    }
    let base = match &s["type"] {
        Value::String(t) => esc(t),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(esc)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => String::new(),
    };
    if base.contains("array") {
        return format!("{base} of {}", type_label(&s["items"]));
    }
    base
}

fn anchor(method: &str, path: &str) -> String {
    let slug: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("op-{method}{slug}")
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_lists_operations_and_loads_nothing_from_elsewhere() {
        let doc = serde_json::to_value(crate::openapi::openapi()).unwrap();
        let page = render(&doc);
        assert!(page.contains("<code>POST /api/auth/login</code>"));
        assert!(page.contains("<code>GET /api/admin/users/{id}</code>"));
        assert!(page.contains("id=\"schema-Session\""));
        assert!(page.contains("Requires <code>Authorization"));
        for remote in ["<script", "<link", "http://", "https://", "style="] {
            assert!(!page.contains(remote), "page contains {remote}");
        }
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
