//! Metric names in PromQL expressions, found by parsing them (the `promql-parser` crate, the
//! grammar GreptimeDB uses), not by pattern matching: label matchers, strings, functions,
//! aggregations and keywords are never mistaken for metric names, and a syntax error fails.

use std::collections::BTreeSet;

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, VectorSelector};
use promql_parser::util::{walk_expr, ExprVisitor};

struct Names(BTreeSet<String>, Vec<String>);

impl ExprVisitor for Names {
    type Error = ();

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, ()> {
        match expr {
            Expr::VectorSelector(vs) => self.selector(vs),
            Expr::MatrixSelector(ms) => self.selector(&ms.vs),
            _ => {}
        }
        Ok(true)
    }
}

impl Names {
    fn selector(&mut self, vs: &VectorSelector) {
        let by_matcher = vs
            .matchers
            .matchers
            .iter()
            .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.clone());
        match vs.name.clone().or(by_matcher) {
            Some(name) => {
                self.0.insert(name);
            }
            None => self.1.push(format!("{vs}")),
        }
    }
}

/// Grafana's interval variables, replaced by a duration so the expression parses.
fn grafana_to_promql(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
}

/// The metric names an expression selects. Errors on a syntax error and on a selector that
/// names no metric (which would select every series).
pub fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    let expr = grafana_to_promql(expr);
    let ast = parser::parse(&expr).map_err(|e| format!("does not parse: {e}\n  {expr}"))?;
    let mut names = Names(BTreeSet::new(), Vec::new());
    let _ = walk_expr(&mut names, &ast);
    if !names.1.is_empty() {
        return Err(format!("selector without a metric name: {:?}", names.1));
    }
    Ok(names.0)
}

/// A Grafana template-variable query: `label_values(<selector>, <label>)` or a PromQL query.
pub fn variable_metric_names(query: &str) -> Result<BTreeSet<String>, String> {
    let query = query.trim();
    if let Some(inner) = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
    {
        // label_values(selector, label): the selector is everything before the last comma.
        return match inner.rsplit_once(',') {
            Some((selector, _label)) => metric_names(selector),
            None => Err(format!("label_values without a selector: {query}")),
        };
    }
    if let Some(inner) = query
        .strip_prefix("query_result(")
        .and_then(|q| q.strip_suffix(')'))
    {
        return metric_names(inner);
    }
    metric_names(query)
}

#[test]
fn names_skip_matchers_functions_keywords_and_strings() {
    let names = metric_names(
        r#"sum by (job, le) (rate(a_bucket{le="0.1", reason!~"x|sum"}[5m])) / on (job) group_left topk(3, b) or vector(1) > bool 2 unless label_replace(c, "d", "$1", "e", "(.*)")"#,
    )
    .expect("parses");
    let expected: BTreeSet<String> = ["a_bucket", "b", "c"].map(String::from).into();
    assert_eq!(names, expected);
    let names =
        metric_names(r#"{__name__="x", job="y"} + rate(y[$__rate_interval])"#).expect("parses");
    assert_eq!(names, ["x", "y"].map(String::from).into());
    assert!(
        metric_names("sum(rate(x[5m])").is_err(),
        "a syntax error fails"
    );
    assert!(
        metric_names(r#"{job="x"}"#).is_err(),
        "a nameless selector fails"
    );
    assert_eq!(
        variable_metric_names("label_values(firehose_twitch_connected{job=\"a,b\"}, instance)")
            .expect("parses"),
        ["firehose_twitch_connected"].map(String::from).into()
    );
}
