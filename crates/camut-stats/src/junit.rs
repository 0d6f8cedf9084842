//! A run's verdicts as JUnit XML, the test-report format CI systems read (GitLab,
//! Jenkins, GitHub test reporters).
//!
//! One `<testsuite>` per campaign holds one `<testcase>` per threshold — failed when the
//! threshold broke, with the expression and the measured value — and one more case,
//! "no drone lost, no data lost", failed when the run is degraded.

use std::fmt::Write as _;

use crate::threshold::Verdict;

/// Name of the test case that fails when drones (and so their data) were lost.
pub const INTEGRITY_CASE: &str = "no drone lost, no data lost";

/// What a JUnit report is made of.
#[derive(Debug, Clone, Default)]
pub struct JunitRun<'a> {
    /// The campaign id: the suite's name.
    pub campaign: &'a str,
    /// Run duration, seconds (the suite's `time`).
    pub duration_s: f64,
    /// When the run started, Unix ms (0: unknown, no `timestamp` attribute).
    pub started_ms: i64,
    /// The threshold verdicts, one test case each.
    pub verdicts: &'a [Verdict],
    /// What was lost, one line per drone; empty when the run is complete.
    pub lost: &'a [String],
    /// Whether the run is degraded (drones lost), even when `lost` says nothing more.
    pub degraded: bool,
}

/// Escapes text for an XML attribute or element.
fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

/// A verdict's failure line: the threshold, its expression and the value measured.
pub fn failure_message(v: &Verdict) -> String {
    match v.value {
        Some(value) => format!("{} {} (value {value:.3})", v.metric, v.expr),
        None => format!("{} {} (no data)", v.metric, v.expr),
    }
}

/// Renders the report: an XML document with one `<testsuite>` inside `<testsuites>`.
pub fn render(run: &JunitRun<'_>) -> String {
    let degraded = run.degraded || !run.lost.is_empty();
    let tests = run.verdicts.len() + 1;
    let failures = run.verdicts.iter().filter(|v| !v.ok).count() + usize::from(degraded);
    let suite = escape(run.campaign);
    let time = format!("{:.3}", run.duration_s.max(0.0));
    let mut o = String::new();
    o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        o,
        "<testsuites name=\"camut\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{time}\">"
    );
    let timestamp = if run.started_ms > 0 {
        format!(" timestamp=\"{}\"", iso8601(run.started_ms))
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        "  <testsuite name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{time}\"{timestamp}>"
    );
    for v in run.verdicts {
        let name = escape(&format!("{} {}", v.metric, v.expr));
        let _ = write!(
            o,
            "    <testcase classname=\"{suite}.thresholds\" name=\"{name}\" time=\"0\""
        );
        if v.ok {
            o.push_str("/>\n");
        } else {
            let message = escape(&failure_message(v));
            let _ = writeln!(
                o,
                ">\n      <failure message=\"{message}\" type=\"threshold\">{message}</failure>\n    </testcase>"
            );
        }
    }
    let _ = write!(
        o,
        "    <testcase classname=\"{suite}.run\" name=\"{INTEGRITY_CASE}\" time=\"{time}\""
    );
    if degraded {
        let detail = if run.lost.is_empty() {
            "the run is degraded: drones were lost and their data with them".to_string()
        } else {
            format!("drones lost: {}", run.lost.join("; "))
        };
        let message = escape(&detail);
        let _ = writeln!(
            o,
            ">\n      <failure message=\"{message}\" type=\"degraded\">{message}</failure>\n    </testcase>"
        );
    } else {
        o.push_str("/>\n");
    }
    o.push_str("  </testsuite>\n</testsuites>\n");
    o
}

/// Unix ms as `YYYY-MM-DDTHH:MM:SS` (UTC), JUnit's timestamp form.
fn iso8601(ms: i64) -> String {
    crate::clock::utc(ms)[..19].replacen(' ', "T", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(expr: &str, ok: bool, value: Option<f64>) -> Verdict {
        Verdict {
            metric: "http.response_time{operation:a&b}".into(),
            expr: expr.into(),
            ok,
            value,
        }
    }

    #[test]
    fn one_case_per_threshold_and_one_for_lost_drones() {
        let verdicts = [
            verdict("p99 < 500", true, Some(12.0)),
            verdict("p50 < 1", false, Some(3.25)),
            verdict("max < 1", false, None),
        ];
        let xml = render(&JunitRun {
            campaign: "shop",
            duration_s: 2.5,
            started_ms: 1_764_633_600_000,
            verdicts: &verdicts,
            lost: &[],
            degraded: false,
        });
        assert!(xml.contains("tests=\"4\" failures=\"2\""), "{xml}");
        assert!(xml.contains("timestamp=\"2025-12-02T00:00:00\""), "{xml}");
        assert!(
            xml.contains(
                "message=\"http.response_time{operation:a&amp;b} p50 &lt; 1 (value 3.250)\""
            ),
            "{xml}"
        );
        assert!(xml.contains("max &lt; 1 (no data)"), "{xml}");
        assert_eq!(xml.matches("<testcase").count(), 4);
        assert!(xml.contains(&format!("name=\"{INTEGRITY_CASE}\" time=\"2.500\"/>")));

        let lost = ["drone-1: silent for 30 s".to_string()];
        let xml = render(&JunitRun {
            campaign: "shop",
            verdicts: &verdicts[..1],
            lost: &lost,
            ..JunitRun::default()
        });
        assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
        assert!(xml.contains("type=\"degraded\">drones lost: drone-1: silent for 30 s<"));
        assert!(!xml.contains("timestamp"));
    }

    #[test]
    fn control_characters_do_not_break_the_document() {
        assert_eq!(escape("a\u{1}b\n\"'"), "a\u{fffd}b\n&quot;&apos;");
    }
}
