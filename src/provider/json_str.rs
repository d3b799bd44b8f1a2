//! A JSON string field that borrows from the frame. serde borrows a
//! `Cow<'a, str>` field marked `borrow` only when the field's type is the `Cow`
//! itself: inside an `Option` it always copies (a `String` per field per
//! frame, for fields such as the id and model every OpenAI chunk repeats). This
//! newtype borrows when the string has no escapes, inside an `Option` too.

use std::{borrow::Cow, ops::Deref};

use serde::Deserialize;

#[derive(Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(transparent)]
pub struct JsonStr<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl JsonStr<'_> {
    pub fn into_owned(self) -> String {
        self.0.into_owned()
    }
}

impl Deref for JsonStr<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Wire<'a> {
        #[serde(default, borrow)]
        a: Option<JsonStr<'a>>,
        #[serde(default, borrow)]
        b: Option<JsonStr<'a>>,
    }

    #[test]
    fn borrows_inside_an_option_and_copies_only_escaped_text() {
        let w: Wire<'_> = serde_json::from_str(r#"{"a":"chatcmpl-1","b":"line\nbreak"}"#).unwrap();
        assert!(matches!(
            w.a.as_ref().unwrap().0,
            Cow::Borrowed("chatcmpl-1")
        ));
        assert!(matches!(&w.b.as_ref().unwrap().0, Cow::Owned(s) if s == "line\nbreak"));
        let w: Wire<'_> = serde_json::from_str(r#"{"a":null}"#).unwrap();
        assert!(w.a.is_none() && w.b.is_none());
    }
}
