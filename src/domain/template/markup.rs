//! The HTML around placeholders: where each one stands, read by an HTML tokenizer, and the escaping of the values
//! that fill them.

use std::ops::Range;

use html5gum::{
    Span, State, Tokenizer,
    emitters::callback::{CallbackEmitter, CallbackEvent},
};

/// Elements whose text is not HTML (raw text, script data, plain text), and the tokenizer state they switch to.
///
/// `title` and `textarea` (escapable raw text) are read as markup instead: what that accepts is safe in both.
const RAW_TEXT_ELEMENTS: [(&str, State); 8] = [
    ("script", State::ScriptData),
    ("style", State::RawText),
    ("xmp", State::RawText),
    ("iframe", State::RawText),
    ("noembed", State::RawText),
    ("noframes", State::RawText),
    ("noscript", State::RawText),
    ("plaintext", State::PlainText),
];

/// Attributes whose value is a URL (or a list of them), where a value at the start could set the scheme.
const URL_ATTRIBUTES: [&str; 21] = [
    "href",
    "src",
    "srcset",
    "imagesrcset",
    "action",
    "formaction",
    "xlink:href",
    "poster",
    "cite",
    "data",
    "background",
    "longdesc",
    "ping",
    "manifest",
    "codebase",
    "lowsrc",
    "dynsrc",
    "usemap",
    "icon",
    "classid",
    "archive",
];

/// SVG animation elements, and their attributes that set another attribute's value (such as an `href`).
const ANIMATION_ELEMENTS: [&str; 3] = ["animate", "set", "animatemotion"];
const ANIMATION_VALUES: [&str; 4] = ["to", "from", "by", "values"];

/// One event of the tokenizer, owned, with the byte range of its text in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    OpenStartTag(String),
    AttributeName(String),
    AttributeValue(String, Range<usize>),
    CloseStartTag(bool),
    EndTag(String),
    Text(String),
    Comment(String),
    Doctype(String),
}

/// The events of `html`, tokenized as a browser does in the `body` of a document: the text of [`RAW_TEXT_ELEMENTS`]
/// is read in its own state.
fn events(html: &str) -> Vec<Event> {
    let emitter = CallbackEmitter::new(|event: CallbackEvent<'_>, span: Span<usize>| {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        Some(match event {
            CallbackEvent::OpenStartTag { name } => Event::OpenStartTag(text(name)),
            CallbackEvent::AttributeName { name } => Event::AttributeName(text(name)),
            CallbackEvent::AttributeValue { value } => {
                Event::AttributeValue(text(value), span.start..span.end)
            }
            CallbackEvent::CloseStartTag { self_closing } => Event::CloseStartTag(self_closing),
            CallbackEvent::EndTag { name } => Event::EndTag(text(name)),
            CallbackEvent::String { value } => Event::Text(text(value)),
            CallbackEvent::Comment { value } => Event::Comment(text(value)),
            CallbackEvent::Doctype { name, .. } => Event::Doctype(text(name)),
            CallbackEvent::Error(_) => return None,
        })
    });
    let mut tokenizer = Tokenizer::new_with_emitter(html, emitter);
    let mut events = Vec::new();
    let mut open_tag = String::new();
    while let Some(Ok(event)) = tokenizer.next() {
        match &event {
            Event::OpenStartTag(name) => open_tag.clone_from(name),
            Event::CloseStartTag(_) => {
                if let Some((_, state)) = RAW_TEXT_ELEMENTS
                    .iter()
                    .find(|(element, _)| *element == open_tag)
                {
                    tokenizer.set_state(*state);
                }
            }
            _ => {}
        }
        events.push(event);
    }
    events
}

/// Why a placeholder cannot stand where it is, for each of `placeholders` (byte ranges of `html`) that is
/// misplaced: its index and the reason.
///
/// A value is escaped ([`escape`]), which keeps it text in text and in a quoted attribute value; anywhere else it
/// could add markup or run as script, so those places are refused. Each placeholder is replaced by a marker that
/// starts with a letter (as a value may), the result is tokenized, and each marker is looked for in the events.
pub fn misplaced(html: &str, placeholders: &[Range<usize>]) -> Vec<(usize, String)> {
    let Some(mark) = (0xE000..=0xF8FF)
        .filter_map(char::from_u32)
        .find(|c| !html.contains(*c))
    else {
        let reason = "cannot be checked: the content uses every private-use character";
        return (0..placeholders.len())
            .map(|index| (index, reason.to_owned()))
            .collect();
    };
    let mut probe = String::with_capacity(html.len());
    let mut rest = 0;
    for (index, range) in placeholders.iter().enumerate() {
        probe.push_str(&html[rest..range.start]);
        probe.push_str(&format!("x{mark}{index}{mark}"));
        rest = range.end;
    }
    probe.push_str(&html[rest..]);

    let mut verdicts: Vec<Option<Result<(), String>>> = vec![None; placeholders.len()];
    let mut judge = |text: &str, verdict: &dyn Fn(&str) -> Result<(), String>| {
        for (index, at) in markers(text, mark) {
            if let Some(slot) = verdicts.get_mut(index) {
                let this = verdict(&text[..at]);
                if slot.as_ref().is_none_or(Result::is_ok) {
                    *slot = Some(this);
                }
            }
        }
    };
    let mut tag = String::new();
    let mut attribute = String::new();
    let mut in_start_tag = false;
    let mut raw_text: Option<String> = None;
    for event in events(&probe) {
        match event {
            Event::OpenStartTag(name) => {
                judge(&name, &|_| Err("stands in a tag name".to_owned()));
                tag = name;
                in_start_tag = true;
            }
            Event::AttributeName(name) => {
                judge(&name, &|_| Err("stands in an attribute name".to_owned()));
                attribute = name;
            }
            Event::AttributeValue(value, _) if !in_start_tag => {
                judge(&value, &|_| Err("stands in an end tag".to_owned()));
            }
            Event::AttributeValue(value, span) => {
                let quoted = span
                    .start
                    .checked_sub(1)
                    .and_then(|before| probe.as_bytes().get(before))
                    .is_some_and(|quote| matches!(quote, b'"' | b'\''));
                judge(&value, &|before| {
                    attribute_value(&tag, &attribute, quoted, before)
                });
            }
            Event::CloseStartTag(_) => {
                in_start_tag = false;
                if RAW_TEXT_ELEMENTS.iter().any(|(element, _)| *element == tag) {
                    raw_text = Some(tag.clone());
                }
            }
            Event::EndTag(name) => {
                judge(&name, &|_| Err("stands in a tag name".to_owned()));
                if raw_text.as_deref() == Some(name.as_str()) {
                    raw_text = None;
                }
                in_start_tag = false;
            }
            Event::Text(text) => match &raw_text {
                Some(element) => judge(&text, &|_| {
                    Err(format!(
                        "stands inside `<{element}>`, whose text is not HTML and is not escaped"
                    ))
                }),
                None => judge(&text, &|_| Ok(())),
            },
            Event::Comment(text) => judge(&text, &|_| {
                Err("stands in a comment (or `<!…>`, `<?…>`), which does not print".to_owned())
            }),
            Event::Doctype(text) => judge(&text, &|_| Err("stands in the doctype".to_owned())),
        }
    }
    verdicts
        .into_iter()
        .enumerate()
        .filter_map(|(index, verdict)| {
            match verdict {
            Some(Ok(())) => None,
            Some(Err(reason)) => Some((index, reason)),
            None => Some((
                index,
                "stands where the HTML parser drops it (in an unclosed tag or a repeated attribute)"
                    .to_owned(),
            )),
        }
        })
        .collect()
}

/// Whether a placeholder may stand in the value of `attribute` of `tag`, after `before` in that value.
fn attribute_value(tag: &str, attribute: &str, quoted: bool, before: &str) -> Result<(), String> {
    if !quoted {
        return Err(format!(
            "stands in the unquoted value of `{attribute}`, where a space or `>` would end it; put the value in quotes"
        ));
    }
    if attribute.starts_with("on") {
        return Err(format!(
            "stands in the event handler `{attribute}`, which is script"
        ));
    }
    if attribute == "style" {
        return Err("stands in a `style` attribute, which is CSS".to_owned());
    }
    if attribute == "srcdoc" {
        return Err("stands in `srcdoc`, which is an HTML document of its own".to_owned());
    }
    let sets_a_url = URL_ATTRIBUTES.contains(&attribute)
        || (ANIMATION_ELEMENTS.contains(&tag) && ANIMATION_VALUES.contains(&attribute));
    if sets_a_url && !before.contains([':', '/', '?', '#']) {
        return Err(format!(
            "stands at the start of the URL in `{attribute}`, where it could set the scheme (`javascript:`); \
             begin the value with its scheme or path (`https://…/{{{{…}}}}`)"
        ));
    }
    Ok(())
}

/// The markers in `text`, each with its index and the byte offset where it starts (at its `x`).
fn markers(text: &str, mark: char) -> Vec<(usize, usize)> {
    let marks: Vec<usize> = text.match_indices(mark).map(|(at, _)| at).collect();
    marks
        .chunks_exact(2)
        .filter_map(|pair| {
            let index = text[pair[0] + mark.len_utf8()..pair[1]].parse().ok()?;
            Some((index, pair[0].saturating_sub(1)))
        })
        .collect()
}

/// A value as HTML text: `&`, `<`, `>`, `"`, `'`, `=` and `` ` `` become character references, so that it is text
/// in text and in a quoted attribute value, and cannot end an unquoted one (the class of CVE-2015-8862).
pub fn escape(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            '=' => out.push_str("&#x3D;"),
            '`' => out.push_str("&#x60;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::{
        merge::MergeVariables,
        template::{TemplateContent, render},
    };

    /// The reason for each placeholder of `html` that is refused.
    fn refusals(html: &str) -> Vec<(usize, String)> {
        let mut ranges = Vec::new();
        let mut from = 0;
        while let Some(start) = html[from..].find("{{").map(|at| at + from) {
            let end = html[start..].find("}}").map(|at| at + start + 2).unwrap();
            ranges.push(start..end);
            from = end;
        }
        misplaced(html, &ranges)
    }

    #[test]
    fn text_and_quoted_attribute_values_are_accepted() {
        for html in [
            "<p>Hello {{first_name}}, welcome to {{city}}!</p>",
            r#"<a title="{{v}}" data-x='{{v}}'>{{v}}</a>"#,
            r#"<a href="https://example.com/{{path}}?q={{q}}#{{f}}">x</a>"#,
            r#"<a href="mailto:{{email}}">{{email}}</a> <img src="/img/{{id}}.png" alt="">"#,
            "<title>{{subject}}</title><textarea>{{note}}</textarea>",
            "{{a}}{{b}}<br/>{{c}}",
            "<p>&{{a}} &amp;{{b}}</p><!-- a comment --><style>p { color: red }</style>",
            "<p>v2 {{a}}</p>\n<!-- v2 -->",
        ] {
            assert_eq!(refusals(html), [], "{html}");
        }
    }

    #[test]
    fn every_other_place_is_refused_with_its_reason() {
        for (html, reason) in [
            (
                "<img src=logo.png alt={{first_name}}>",
                "unquoted value of `alt`",
            ),
            ("<p title= {{x}}>", "unquoted value of `title`"),
            ("<{{tag}}>", "tag name"),
            ("</{{tag}}>", "tag name"),
            ("<p {{attribute}}=\"1\">", "attribute name"),
            ("<p data-{{x}}>", "attribute name"),
            ("<script>var a = '{{x}}';</script>", "inside `<script>`"),
            ("<style>p { color: {{x}} }</style>", "inside `<style>`"),
            ("<xmp>{{x}}</xmp>", "inside `<xmp>`"),
            ("<plaintext>{{x}}", "inside `<plaintext>`"),
            ("<!-- {{x}} -->", "comment"),
            ("<!{{x}}>", "comment"),
            ("<!DOCTYPE {{x}}>", "doctype"),
            (r#"<a href="{{url}}">"#, "start of the URL in `href`"),
            (r#"<a href=" {{url}}">"#, "start of the URL in `href`"),
            (r#"<a href="java{{url}}">"#, "start of the URL in `href`"),
            (r#"<form action='{{url}}'>"#, "start of the URL in `action`"),
            (
                r#"<img srcset="{{url}} 2x">"#,
                "start of the URL in `srcset`",
            ),
            (
                r#"<svg><set attributeName="href" to="{{x}}"/></svg>"#,
                "start of the URL in `to`",
            ),
            (r#"<p onclick="greet('{{x}}')">"#, "event handler `onclick`"),
            (r#"<p style="color: {{x}}">"#, "`style` attribute"),
            (r#"<iframe srcdoc="{{x}}">"#, "`srcdoc`"),
            (r#"<p title="{{x}}"#, "drops it"),
            (r#"</p title="{{x}}">"#, "end tag"),
        ] {
            let refused = refusals(html);
            assert_eq!(refused.len(), 1, "{html}: {refused:?}");
            assert!(refused[0].1.contains(reason), "{html}: {refused:?}");
        }
    }

    #[test]
    fn each_refused_placeholder_is_named_by_its_index() {
        let refused = refusals(r#"<p>{{a}}</p><img alt={{b}}><p>{{c}}</p><script>{{d}}</script>"#);
        let indexes: Vec<usize> = refused.iter().map(|(index, _)| *index).collect();
        assert_eq!(indexes, [1, 3]);
    }

    #[test]
    fn content_that_already_uses_the_first_private_use_character_is_checked_too() {
        assert_eq!(refusals("<p>\u{E000}0\u{E000} {{a}}</p>"), []);
        assert_eq!(refusals("<img alt={{a}}>\u{E000}").len(), 1);
    }

    #[test]
    fn escaping_covers_quotes_equals_and_backticks() {
        let mut out = String::new();
        escape(r#"<a href="x" onclick='y'>&`=é"#, &mut out);
        assert_eq!(
            out,
            "&lt;a href&#x3D;&quot;x&quot; onclick&#x3D;&#x27;y&#x27;&gt;&amp;&#x60;&#x3D;é"
        );
    }

    /// The tags, attribute names, comments and doctypes of `html`, in order: all but text and attribute values
    /// (the tokenizer reports no value for an empty one, and a variable may be empty).
    fn structure(html: &str) -> Vec<Event> {
        events(html)
            .into_iter()
            .filter(|event| !matches!(event, Event::Text(_) | Event::AttributeValue(..)))
            .collect()
    }

    /// Pieces of HTML that templates are made of, placeholders in every place among them.
    const TEMPLATE_PIECES: &[&str] = &[
        "<p>",
        "</p>",
        "<a href=\"https://example.com/",
        "<a href=\"",
        "\">",
        "\"",
        "'",
        "<img alt=",
        "<div title='",
        "<p title=\"",
        " ",
        "=",
        ">",
        "<",
        "</",
        "/>",
        "<!--",
        "-->",
        "<!",
        "<script>",
        "</script>",
        "<style>",
        "</style>",
        "<title>",
        "</title>",
        "<textarea>",
        "</textarea>",
        "<svg>",
        "<!DOCTYPE html>",
        "&",
        "&amp;",
        "`",
        "\n",
        " onclick=\"",
        " style=\"",
        " src='/",
        "?q=",
        "#",
        "text",
        "{{a}}",
        "{{ b }}",
        "{{a}}",
        "{{c}}",
    ];

    /// Pieces of values that would change the markup if they were not escaped.
    const VALUE_PIECES: &[&str] = &[
        "\"",
        "'",
        "<",
        ">",
        "&",
        "=",
        "`",
        " ",
        "/",
        "-->",
        "<!--",
        "</script>",
        "</title>",
        "javascript:",
        "\t",
        "\n",
        "x onerror=alert(1)",
        "<img src=x>",
        "&amp;",
        "&#x22;",
        "\0",
    ];

    fn values() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                prop::sample::select(VALUE_PIECES).prop_map(str::to_owned),
                any::<char>().prop_map(String::from),
            ],
            0..6,
        )
        .prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// For any accepted template and any values, the rendered document has the template's tags and attributes.
        #[test]
        fn rendering_keeps_the_tags_and_attributes_of_the_template(
            pieces in prop::collection::vec(prop::sample::select(TEMPLATE_PIECES), 1..16),
            a in values(),
            b in values(),
            c in values(),
        ) {
            let html = pieces.concat();
            if let Ok(content) = TemplateContent::parse(html.clone()) {
                let variables = MergeVariables::from([
                    ("a".to_owned(), a),
                    ("b".to_owned(), b),
                    ("c".to_owned(), c),
                ]);
                let rendered = render(&content.html, &variables).expect("every variable is given");
                prop_assert_eq!(structure(&rendered), structure(&html), "{} rendered as {}", html, rendered);
            }
        }
    }

    #[test]
    fn accepted_templates_keep_their_structure_whatever_the_values() {
        let html =
            r#"<a href="https://example.com/{{a}}" title='{{a}}'>{{a}}</a><title>{{a}}</title>"#;
        assert!(TemplateContent::parse(html.to_owned()).is_ok());
        for value in VALUE_PIECES {
            let variables = MergeVariables::from([("a".to_owned(), (*value).to_owned())]);
            let rendered = render(html, &variables).unwrap();
            assert_eq!(structure(&rendered), structure(html), "{rendered}");
        }
    }
}
