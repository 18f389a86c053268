//! `GET /admin/status` (admins only): what radiology IT watches, from the same sources as
//! `/metrics` (its Prometheus text, parsed) and the store (backlog, studies by state,
//! exclusions now).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};

use super::{Nav, blocking};
use crate::error::PageError;
use crate::session::Admin;
use crate::{App, Error};

/// One series of the Prometheus text: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub(crate) labels: String,
    pub(crate) value: f64,
}

/// The samples of a Prometheus text exposition by metric name (comments skipped;
/// histogram buckets kept under their own names).
pub(crate) fn parse_metrics(text: &str) -> BTreeMap<String, Vec<Series>> {
    let mut out: BTreeMap<String, Vec<Series>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        out.entry(name.to_owned()).or_default().push(Series {
            labels: labels.to_owned(),
            value,
        });
    }
    out
}

/// The value of `label` in a label set (`a="x",b="y"`).
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// A table of the status page: `(label, value)` rows.
struct Section {
    id: &'static str,
    title: &'static str,
    rows: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    nav: Nav,
    model_version: String,
    execution_provider: String,
    sections: Vec<Section>,
}

fn count(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

/// The series of `metric` by the value of `by` (every series when the metric has none).
fn by_label(
    metrics: &BTreeMap<String, Vec<Series>>,
    metric: &str,
    by: &str,
) -> Vec<(String, String)> {
    metrics
        .get(metric)
        .map(|series| {
            series
                .iter()
                .map(|s| {
                    let key = label(&s.labels, by).unwrap_or("all").to_owned();
                    (key, count(s.value))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `GET /admin/status`.
pub(crate) async fn page(
    Admin(user): Admin,
    State(app): State<App>,
) -> Result<Response, PageError> {
    let metrics = parse_metrics(&(app.web.metrics)());
    let store = app.web.store.clone();
    let (backlog, states, excluded, cases) = blocking("read the status counts", move || {
        Ok((
            store.backlog()?,
            store.state_counts()?,
            store.exclusion_counts()?,
            store.case_counts()?,
        ))
    })
    .await?;
    let single = |metric: &str| {
        metrics
            .get(metric)
            .and_then(|s| s.first())
            .map_or_else(|| "0".to_owned(), |s| count(s.value))
    };
    let mut throughput = by_label(&metrics, "spinewatch_studies_total", "outcome");
    for t in &mut throughput {
        t.0 = format!("studies {}", t.0);
    }
    throughput.push((
        "instances received".into(),
        single("spinewatch_instances_received_total"),
    ));
    throughput.push((
        "bytes received".into(),
        single("spinewatch_bytes_received_total"),
    ));
    let mut backlog_rows = vec![
        (
            "studies waiting for an outcome".to_owned(),
            backlog.to_string(),
        ),
        (
            "accepting instances".to_owned(),
            if single("spinewatch_accepting") == "0" {
                "no (over the backlog ceiling)"
            } else {
                "yes"
            }
            .to_owned(),
        ),
    ];
    backlog_rows.extend(
        states
            .iter()
            .map(|(s, n)| (format!("studies {s}"), n.to_string())),
    );
    backlog_rows.extend(
        cases
            .iter()
            .map(|(s, n)| (format!("cases {s}"), n.to_string())),
    );
    let mut exclusions = by_label(&metrics, "spinewatch_exclusions_total", "reason");
    exclusions.extend(excluded.into_iter().map(|(reason, n)| {
        let reason = if reason.is_empty() {
            "unknown".to_owned()
        } else {
            reason
        };
        (
            format!("{reason} (studies excluded now, database)"),
            n.to_string(),
        )
    }));
    let mut errors: Vec<(String, String)> =
        by_label(&metrics, "spinewatch_analysis_failures_total", "kind")
            .into_iter()
            .map(|(k, v)| (format!("analysis failures: {k}"), v))
            .collect();
    errors.extend(
        by_label(&metrics, "spinewatch_store_failures_total", "status")
            .into_iter()
            .map(|(k, v)| (format!("C-STORE failures: status {k}"), v)),
    );
    errors.extend(
        by_label(&metrics, "spinewatch_associations_total", "outcome")
            .into_iter()
            .map(|(k, v)| (format!("associations: {k}"), v)),
    );
    let provider = metrics
        .get("spinewatch_execution_provider")
        .and_then(|series| {
            series
                .iter()
                .find(|s| s.value == 1.0)
                .and_then(|s| label(&s.labels, "provider").map(str::to_owned))
        })
        .unwrap_or_else(|| app.web.model.execution_provider.clone());
    let sections = vec![
        Section {
            id: "throughput",
            title: "Throughput (since the service started)",
            rows: throughput,
        },
        Section {
            id: "backlog",
            title: "Backlog and queue",
            rows: backlog_rows,
        },
        Section {
            id: "exclusions",
            title: "Exclusions by reason",
            rows: exclusions,
        },
        Section {
            id: "not-analysable",
            title: "Not analysable by reason",
            rows: by_label(&metrics, "spinewatch_not_analysable_total", "reason"),
        },
        Section {
            id: "errors",
            title: "Errors and refusals",
            rows: errors,
        },
    ];
    let html = StatusPage {
        nav: Nav::new(&user, "status"),
        model_version: app.web.model.version.clone(),
        execution_provider: provider,
        sections,
    }
    .render()
    .map_err(|source| Error::Render {
        page: "status",
        source,
    })?;
    Ok(Html(html).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_is_parsed() {
        let text = "# HELP x y\n# TYPE spinewatch_studies_total counter\n\
                    spinewatch_studies_total{outcome=\"positive\"} 3\n\
                    spinewatch_studies_total{outcome=\"excluded\"} 1\n\
                    spinewatch_backlog_studies 2\n";
        let m = parse_metrics(text);
        assert_eq!(
            by_label(&m, "spinewatch_studies_total", "outcome"),
            [
                ("positive".to_owned(), "3".to_owned()),
                ("excluded".to_owned(), "1".to_owned())
            ]
        );
        assert_eq!(m["spinewatch_backlog_studies"][0].value, 2.0);
        assert_eq!(label("a=\"x\",provider=\"cpu\"", "provider"), Some("cpu"));
    }
}
