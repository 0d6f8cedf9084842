//! Thresholds: pass/fail criteria such as `'p99 < 500'` on a metric, evaluated on a summary.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A threshold that cannot be parsed; `option` names where it stands in the campaign.
#[derive(Debug, thiserror::Error)]
#[error("campaign option `{option}` {message}")]
pub struct ThresholdError {
    /// Where, e.g. `thresholds['http.response_time']`.
    pub option: String,
    /// What is expected.
    pub message: String,
}

fn invalid(option: &str, message: &str) -> ThresholdError {
    ThresholdError {
        option: option.to_string(),
        message: message.to_string(),
    }
}

/// What is computed from a metric before comparing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Mean value.
    Avg,
    /// A percentile, 0–100 (`p99`, `p(99.9)`, `med`).
    Percentile(f64),
    /// How many values (or events) were recorded.
    Count,
    /// For error metrics: errors / requests. For others: events per second.
    Rate,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Cmp {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
        }
    }
}

/// One threshold of a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Metric name, e.g. `http.response_time`.
    pub metric: String,
    /// Optional tag filter written `metric{operation:login}`.
    pub filter: Option<(String, String)>,
    /// The expression as written, e.g. `p99 < 500`.
    pub expr: String,
    /// What is computed from the metric.
    pub aggregate: Aggregate,
    /// The comparison.
    pub cmp: Cmp,
    /// The bound (milliseconds for time metrics).
    pub bound: f64,
    /// Whether breaking it should stop the campaign at once (server side).
    pub abort_on_fail: bool,
}

/// The verdict of one threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Metric as written in the campaign (with its filter).
    pub metric: String,
    /// The expression.
    pub expr: String,
    /// Whether it held.
    pub ok: bool,
    /// The measured value (null when the metric had no data).
    pub value: Option<f64>,
}

/// Something that can compute an aggregate of a metric.
pub trait MetricSource {
    /// The aggregate of a metric (optionally filtered by a tag), or None without data.
    fn aggregate(
        &self,
        metric: &str,
        filter: Option<(&str, &str)>,
        aggregate: Aggregate,
    ) -> Option<f64>;
}

impl Threshold {
    /// Parses the `thresholds` option: `{ metric: [expr | {expr, abortOnFail}] }`.
    pub fn parse_all(v: &Value) -> Result<Vec<Threshold>, ThresholdError> {
        let obj = v.as_object().ok_or_else(|| {
            invalid(
                "thresholds",
                "must be an object such as { 'http.response_time': ['p99 < 500'] }",
            )
        })?;
        let mut out = Vec::new();
        for (name, list) in obj {
            let option = format!("thresholds['{name}']");
            let (metric, filter) = parse_metric(name).ok_or_else(|| {
                invalid(&option, "is not a metric name; expected e.g. 'http.response_time' or 'http.response_time{operation:login}'")
            })?;
            let items: Vec<&Value> = match list {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for item in items {
                let (expr, abort_on_fail) = match item {
                    Value::String(s) => (s.clone(), false),
                    Value::Object(m) => {
                        for k in m.keys() {
                            if k != "expr" && k != "abortOnFail" {
                                return Err(invalid(
                                    &option,
                                    &format!(
                                        "has unknown key `{k}`; expected `expr` and `abortOnFail`"
                                    ),
                                ));
                            }
                        }
                        let expr = m.get("expr").and_then(Value::as_str).ok_or_else(|| {
                            invalid(
                                &option,
                                "needs `expr`, e.g. { expr: 'rate < 0.01', abortOnFail: true }",
                            )
                        })?;
                        let abort = match m.get("abortOnFail") {
                            None => false,
                            Some(Value::Bool(b)) => *b,
                            Some(_) => {
                                return Err(invalid(&option, "abortOnFail must be true or false"))
                            }
                        };
                        (expr.to_string(), abort)
                    }
                    _ => return Err(invalid(&option, "must list strings such as 'p99 < 500'")),
                };
                let (aggregate, cmp, bound) = parse_expr(&expr).ok_or_else(|| {
                    invalid(&option, &format!("has a bad expression '{expr}'; expected `<aggregate> <op> <number>` with aggregate one of min, max, avg, med, pNN, p(NN.N), count, rate and op one of < <= > >= == !="))
                })?;
                out.push(Threshold {
                    metric: metric.clone(),
                    filter: filter.clone(),
                    expr,
                    aggregate,
                    cmp,
                    bound,
                    abort_on_fail,
                });
            }
        }
        Ok(out)
    }

    /// The metric name as written, with its filter.
    pub fn metric_label(&self) -> String {
        match &self.filter {
            Some((k, v)) => format!("{}{{{k}:{v}}}", self.metric),
            None => self.metric.clone(),
        }
    }

    /// Evaluates this threshold. A metric without data fails (nothing was proven).
    pub fn evaluate(&self, src: &dyn MetricSource) -> Verdict {
        let filter = self.filter.as_ref().map(|(k, v)| (k.as_str(), v.as_str()));
        let value = src.aggregate(&self.metric, filter, self.aggregate);
        Verdict {
            metric: self.metric_label(),
            expr: self.expr.clone(),
            ok: value.is_some_and(|v| self.cmp.holds(v, self.bound)),
            value,
        }
    }
}

fn parse_metric(s: &str) -> Option<(String, Option<(String, String)>)> {
    let valid = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
    };
    match s.find('{') {
        None => valid(s).then(|| (s.to_string(), None)),
        Some(i) => {
            let inner = s[i + 1..].strip_suffix('}')?;
            let (k, v) = inner.split_once(':')?;
            let name = &s[..i];
            valid(name).then(|| {
                (
                    name.to_string(),
                    Some((k.trim().to_string(), v.trim().to_string())),
                )
            })
        }
    }
}

fn parse_expr(expr: &str) -> Option<(Aggregate, Cmp, f64)> {
    let ops = [
        ("<=", Cmp::Le),
        (">=", Cmp::Ge),
        ("==", Cmp::Eq),
        ("!=", Cmp::Ne),
        ("<", Cmp::Lt),
        (">", Cmp::Gt),
    ];
    let (pos, op, cmp) = ops
        .iter()
        .filter_map(|(o, c)| expr.find(o).map(|p| (p, *o, *c)))
        .min_by_key(|x| x.0)?;
    let left = expr[..pos].trim();
    let right = expr[pos + op.len()..].trim();
    let bound: f64 = right.parse().ok().filter(|b: &f64| b.is_finite())?;
    let aggregate = match left {
        "min" => Aggregate::Min,
        "max" => Aggregate::Max,
        "avg" | "mean" => Aggregate::Avg,
        "med" => Aggregate::Percentile(50.0),
        "count" => Aggregate::Count,
        "rate" => Aggregate::Rate,
        p if p.starts_with('p') => {
            let n = p[1..].trim_start_matches('(').trim_end_matches(')');
            let q: f64 = n.parse().ok()?;
            if !(0.0..=100.0).contains(&q) {
                return None;
            }
            Aggregate::Percentile(q)
        }
        _ => return None,
    };
    Some((aggregate, cmp, bound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fixed;
    impl MetricSource for Fixed {
        fn aggregate(
            &self,
            metric: &str,
            filter: Option<(&str, &str)>,
            a: Aggregate,
        ) -> Option<f64> {
            match (metric, filter, a) {
                ("http.response_time", None, Aggregate::Percentile(99.0)) => Some(420.0),
                ("http.response_time", Some(("operation", "login")), Aggregate::Max) => Some(900.0),
                ("http.errors", None, Aggregate::Rate) => Some(0.02),
                _ => None,
            }
        }
    }

    #[test]
    fn parses_and_evaluates() {
        let t = Threshold::parse_all(&json!({
            "http.response_time": ["p99 < 500", "p(99.9)<=1000"],
            "http.response_time{operation:login}": "max < 800",
            "http.errors": [{"expr": "rate < 0.01", "abortOnFail": true}],
        }))
        .unwrap();
        assert_eq!(t.len(), 4);
        let v: Vec<Verdict> = t.iter().map(|t| t.evaluate(&Fixed)).collect();
        let by = |e: &str| v.iter().find(|v| v.expr == e).unwrap();
        assert!(by("p99 < 500").ok);
        assert_eq!(by("p99 < 500").value, Some(420.0));
        assert!(!by("p(99.9)<=1000").ok, "no data must fail");
        assert!(!by("max < 800").ok);
        assert_eq!(
            by("max < 800").metric,
            "http.response_time{operation:login}"
        );
        assert!(!by("rate < 0.01").ok);
        assert!(t.iter().any(|t| t.abort_on_fail));
    }

    #[test]
    fn bad_expressions_are_refused() {
        for bad in ["p99 500", "p999 < 5", "foo < 1", "p99 < abc"] {
            let e = Threshold::parse_all(&json!({"http.response_time": [bad]}))
                .unwrap_err()
                .to_string();
            assert!(e.contains("bad expression"), "{bad}: {e}");
        }
    }
}
