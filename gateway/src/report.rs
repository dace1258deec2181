//! Errors as people read them: an error with its causes on one line.

use std::error::Error;

/// `outer: cause: cause`, skipping a cause whose text the line already has.
pub fn error_chain(e: &(dyn Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
