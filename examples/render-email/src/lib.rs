//! Renders a notification email about a page, as a CMS sends when a page is published or
//! submitted for moderation (Wagtail's "page published" / "page needs moderation" emails).
//!
//! It shows a small, pure JSON task whose every user-supplied value is HTML-escaped in the
//! HTML part, with no template engine. An unknown event fails the job at once (`fatal`).
//!
//! Input:
//! `{"user": {"name": "...", "email": "..."}, "page": {"title": "...", "url": "...", "author": "..."}, "event": "published" | "submitted"}`
//!
//! Output: `{"to": "...", "subject": "...", "text": "...", "html": "..."}`
//!
//! ```text
//! cargo build --profile guest --target wasm32-wasip2 -p render-email
//! wasmq run target/wasm32-wasip2/guest/render_email.wasm --input '{"user": {"name": "Ana", "email": "ana@example.com"}, "page": {"title": "Spring <news>", "url": "https://example.com/news/", "author": "Bo"}, "event": "submitted"}'
//! ```

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use wasmq_guest::{Context, TaskError};

#[derive(Deserialize)]
struct Input {
    user: User,
    page: Page,
    event: String,
}

#[derive(Deserialize)]
struct User {
    name: String,
    email: String,
}

#[derive(Deserialize)]
struct Page {
    title: String,
    url: String,
    author: String,
}

#[derive(Serialize)]
struct Email {
    to: String,
    subject: String,
    text: String,
    html: String,
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// Removes line breaks, which would let a value inject headers into the subject line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn run(input: Input, cx: &Context) -> Result<Email, TaskError> {
    let Input { user, page, event } = input;
    let (subject, action) = match event.as_str() {
        "published" => (
            format!("The page \"{}\" has been published", page.title),
            "has been published",
        ),
        "submitted" => (
            format!(
                "The page \"{}\" has been submitted for moderation",
                page.title
            ),
            "has been submitted for moderation and needs your review",
        ),
        other => {
            return Err(TaskError::fatal(format!(
                "unknown event `{other}`: expected `published` or `submitted`"
            )));
        }
    };
    cx.debug(format!("rendering `{event}` email"));

    let mut text = String::new();
    let _ = writeln!(text, "Hello {},", user.name);
    let _ = writeln!(text);
    let _ = writeln!(
        text,
        "The page \"{}\" by {} {action}.",
        page.title, page.author
    );
    let _ = writeln!(text);
    let _ = writeln!(text, "You can view the page here: {}", page.url);

    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html><body>\n<p>Hello {name},</p>\n\
         <p>The page &quot;{title}&quot; by {author} {action}.</p>\n\
         <p><a href=\"{url}\">View the page</a></p>\n</body></html>\n",
        name = escape(&user.name),
        title = escape(&page.title),
        author = escape(&page.author),
        url = escape(&page.url),
    );

    Ok(Email {
        to: one_line(&user.email),
        subject: one_line(&subject),
        text,
        html,
    })
}

wasmq_guest::json_task!(run);
