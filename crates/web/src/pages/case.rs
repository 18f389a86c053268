//! The case page (`GET /cases/{n}`), its key image (`GET /cases/{n}/key-image`) and the
//! nurse's decision (`POST /cases/{n}/decision`).
//!
//! The key images are PNG files the pipeline wrote below the data directory, named in the
//! case's findings (paths relative to the data directory): `sagittal.png` in the bone
//! window and `sagittal-soft.png` in the soft-tissue window; a case without the soft one
//! shows the bone one for both. They are served only to a signed-in user, under the case
//! number, never under the Study UID.

use std::path::{Component, Path, PathBuf};

use askama::Template;
use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use spinewatch_core::{GenantGrade, VertebraLevel};
use spinewatch_triage::{
    Action, CaseDetail, Decision, DecisionAction, DecisionRecord, Disposition, ErrorChain,
    VertebraFinding,
};

use super::{Nav, PatientView, blocking, describe, format_time, percent};
use crate::error::PageError;
use crate::session::{SignedIn, check_csrf};
use crate::{App, Error, png};

/// File name of the bone-window key image.
pub(crate) const BONE_IMAGE: &str = "sagittal.png";
/// File name of the soft-tissue-window key image.
pub(crate) const SOFT_IMAGE: &str = "sagittal-soft.png";

/// The window a key image is shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Window {
    /// Bone (the default).
    #[default]
    Bone,
    /// Soft tissue.
    Soft,
}

impl Window {
    fn as_str(self) -> &'static str {
        match self {
            Self::Bone => "bone",
            Self::Soft => "soft",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Bone => "bone window",
            Self::Soft => "soft-tissue window",
        }
    }
}

/// `?window=bone|soft`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WindowQuery {
    #[serde(default)]
    window: Window,
}

/// The key image of `window` among the case's key images (relative to the data
/// directory): `sagittal-soft.png` for the soft window when there is one, else the bone
/// image (`sagittal.png`, or the first image of an older case).
fn key_image_path(key_images: &[String], window: Window) -> Option<&str> {
    let named = |name: &str| {
        key_images
            .iter()
            .find(|p| Path::new(p).file_name().is_some_and(|f| f == name))
    };
    let bone = named(BONE_IMAGE).or_else(|| {
        key_images
            .iter()
            .find(|p| Path::new(p).file_name().is_none_or(|f| f != SOFT_IMAGE))
    });
    let chosen = match window {
        Window::Bone => bone,
        Window::Soft => named(SOFT_IMAGE).or(bone),
    };
    chosen.map(String::as_str)
}

/// The file of a relative key-image path below the data directory, if the path stays
/// below it.
fn below(data_dir: &Path, relative: &str) -> Option<PathBuf> {
    let path = Path::new(relative);
    let plain = !relative.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    plain.then(|| data_dir.join(path))
}

/// Reads the key image of `window`: its bytes and `(width, height)`, or `None` when the
/// case has none or its file is missing.
async fn read_key_image(
    data_dir: &Path,
    case: &CaseDetail,
    window: Window,
) -> Result<Option<(Vec<u8>, (u32, u32))>, Error> {
    let Some(file) = key_image_path(&case.findings.key_images, window)
        .and_then(|relative| below(data_dir, relative))
    else {
        return Ok(None);
    };
    let bytes = match tokio::fs::read(&file).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(case = case.summary.case_number, "Key image file missing.");
            return Ok(None);
        }
        Err(source) => return Err(Error::ReadKeyImage { path: file, source }),
    };
    let size = png::dimensions(&bytes).ok_or(Error::NotPng { path: file })?;
    Ok(Some((bytes, size)))
}

/// The case numbered `n` (a path segment), or 404.
async fn find_case(app: &App, n: &str) -> Result<CaseDetail, PageError> {
    let number: i64 = n.parse().map_err(|_| PageError::NotFound)?;
    let store = app.web.store.clone();
    blocking("read a case", move || store.case_by_number(number))
        .await?
        .ok_or(PageError::NotFound)
}

/// `GET /cases/{n}/key-image?window=bone|soft`: the PNG.
pub(crate) async fn key_image(
    _user: SignedIn,
    State(app): State<App>,
    UrlPath(n): UrlPath<String>,
    Query(query): Query<WindowQuery>,
) -> Result<Response, PageError> {
    let case = find_case(&app, &n).await?;
    let (bytes, _) = read_key_image(&app.web.data_dir, &case, query.window)
        .await?
        .ok_or(PageError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        bytes,
    )
        .into_response())
}

/// A row of the vertebrae table.
struct VertebraRow {
    level: Option<String>,
    flagged: bool,
    grade: u8,
    probability: String,
    morphometry_grade: String,
    anterior: String,
    middle: String,
    posterior: String,
    height_loss: String,
}

impl VertebraRow {
    fn new(v: &VertebraFinding) -> Self {
        let mm = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |x| format!("{x:.1}"));
        Self {
            level: v.label.map(|l| l.to_string()),
            flagged: v.flagged,
            grade: v.grade.number(),
            probability: percent(v.probability),
            morphometry_grade: v
                .morphometry_grade
                .map_or_else(|| "-".to_owned(), |g| g.number().to_string()),
            anterior: mm(v.heights_mm.map(|h| h.anterior)),
            middle: mm(v.heights_mm.map(|h| h.middle)),
            posterior: mm(v.heights_mm.map(|h| h.posterior)),
            height_loss: v.height_loss.map_or_else(|| "-".to_owned(), percent),
        }
    }
}

/// A row of the audit trail.
struct AuditRow {
    when: String,
    who: String,
    action: &'static str,
    before: String,
    after: String,
    note: String,
}

impl AuditRow {
    fn new(d: &DecisionRecord) -> Self {
        Self {
            when: format_time(d.at),
            who: d.user.clone(),
            action: action_label(d.action),
            before: describe(
                d.previous_status,
                d.previous_disposition,
                d.previous_grade,
                d.previous_level,
            ),
            after: describe(d.new_status, d.disposition, d.grade, d.level),
            note: d.note.clone().unwrap_or_default(),
        }
    }
}

/// An action as the audit trail names it.
fn action_label(action: DecisionAction) -> &'static str {
    match action {
        DecisionAction::Confirm => "confirm",
        DecisionAction::Dismiss => "dismiss (false positive)",
        DecisionAction::Refer => "refer to radiologist",
        DecisionAction::AlreadyKnown => "already known / on treatment",
        DecisionAction::CancerPathway => "cancer pathway",
        DecisionAction::NotAppropriate => "end of life or not appropriate",
        DecisionAction::Reanalysed => "re-analysed",
    }
}

/// The decision form's actions: `(value, label)`.
const ACTIONS: [(&str, &str); 6] = [
    ("confirm", "Confirm fracture"),
    ("dismiss", "Dismiss (false positive)"),
    ("already_known", "Already known / on treatment"),
    ("cancer_pathway", "Cancer pathway"),
    ("not_appropriate", "End of life or not appropriate"),
    ("refer_radiologist", "Refer to radiologist"),
];

/// The action of a form value.
fn parse_action(value: &str, level: &str, grade: &str) -> Result<Action, PageError> {
    let bad = PageError::BadRequest;
    Ok(match value {
        "confirm" => {
            let level: VertebraLevel = level.parse().map_err(|e| bad(format!("level: {e}")))?;
            let grade = grade
                .parse::<u8>()
                .map_err(|e| e.to_string())
                .and_then(|g| GenantGrade::try_from(g).map_err(|e| e.to_string()))
                .map_err(|e| bad(format!("grade: {e}")))?;
            Action::Confirm { grade, level }
        }
        "dismiss" => Action::Dismiss,
        "refer_radiologist" => Action::Refer,
        "already_known" => Action::Close(Disposition::AlreadyKnown),
        "cancer_pathway" => Action::Close(Disposition::CancerPathway),
        "not_appropriate" => Action::Close(Disposition::NotAppropriate),
        other => return Err(bad(format!("unknown action `{other}`"))),
    })
}

/// An option of a `<select>`.
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

/// The image on the page.
struct ImageView {
    src: String,
    width: u32,
    height: u32,
    alt: String,
}

/// Another case of the same patient.
struct OtherCase {
    number: i64,
    date: String,
    standing: String,
}

#[derive(Template)]
#[template(path = "case.html")]
struct CasePage {
    nav: Nav,
    number: i64,
    status: String,
    pending: bool,
    patient: PatientView,
    window: &'static str,
    window_label: &'static str,
    image: Option<ImageView>,
    flagged: String,
    vertebrae: Vec<VertebraRow>,
    facts: Vec<(&'static str, String)>,
    actions: Vec<Choice>,
    levels: Vec<Choice>,
    grades: Vec<Choice>,
    audit: Vec<AuditRow>,
    others: Vec<OtherCase>,
}

/// The study's facts, in the order the page lists them.
fn facts(case: &CaseDetail) -> Vec<(&'static str, String)> {
    let or_dash = |v: Option<String>| {
        v.filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "-".into())
    };
    let study = case.findings.study.as_ref();
    let s = |f: fn(&spinewatch_triage::StudyFacts) -> Option<String>| or_dash(study.and_then(f));
    vec![
        (
            "Study date",
            case.summary
                .study_date
                .map(spinewatch_triage::queue::format_date)
                .unwrap_or_else(|| "-".into()),
        ),
        ("Study", s(|f| f.study_description.clone())),
        ("Accession number", s(|f| f.accession_number.clone())),
        ("Scanner", s(|f| f.scanner())),
        ("Station", s(|f| f.station_name.clone())),
        ("Institution", s(|f| f.institution.clone())),
        (
            "Series used",
            or_dash(study.map(|f| {
                let number = f.series_number.map(|n| format!("#{n}")).unwrap_or_default();
                let description = f.series_description.clone().unwrap_or_default();
                format!("{number} {description}").trim().to_owned()
            })),
        ),
        ("Slices", or_dash(study.map(|f| f.slices.to_string()))),
        (
            "Voxel spacing",
            or_dash(study.map(|f| {
                let [x, y, z] = f.spacing_mm;
                format!("{x:.2} x {y:.2} x {z:.2} mm")
            })),
        ),
        ("Kernel", s(|f| f.convolution_kernel.clone())),
        (
            "Age at study",
            or_dash(
                study
                    .and_then(|f| f.patient_age_years)
                    .map(|a| format!("{a:.0} years")),
            ),
        ),
        ("Model", case.findings.model_version.clone()),
        (
            "Execution provider",
            case.findings.execution_provider.clone(),
        ),
        ("Queued", format_time(case.summary.created_at)),
        ("Analysis generation", case.generation.to_string()),
    ]
}

/// The flagged vertebra the form preselects: the highest model grade, then probability.
fn preselected(case: &CaseDetail) -> (Option<VertebraLevel>, GenantGrade) {
    if let (Some(level), Some(grade)) = (case.summary.confirmed_level, case.summary.confirmed_grade)
    {
        return (Some(level), grade);
    }
    let top = case
        .findings
        .flagged()
        .filter(|v| v.label.is_some())
        .max_by(|a, b| {
            a.grade
                .cmp(&b.grade)
                .then(a.probability.total_cmp(&b.probability))
        });
    let grade = top
        .map(|v| v.grade)
        .filter(|g| g.is_fracture())
        .unwrap_or(GenantGrade::Mild);
    (top.and_then(|v| v.label), grade)
}

/// `GET /cases/{n}`.
pub(crate) async fn page(
    user: SignedIn,
    State(app): State<App>,
    UrlPath(n): UrlPath<String>,
    Query(query): Query<WindowQuery>,
) -> Result<Response, PageError> {
    let case = find_case(&app, &n).await?;
    let number = case.summary.case_number;
    let image = read_key_image(&app.web.data_dir, &case, query.window).await?;
    let key = vec![case.summary.patient_key.clone()];
    let store = app.web.store.clone();
    let others = blocking("read the patient's other cases", move || {
        store.cases_of_patients(&key)
    })
    .await?;

    let flagged: Vec<String> = case
        .findings
        .flagged()
        .map(|v| match v.label {
            Some(l) => format!("{l} (grade {})", v.grade.number()),
            None => format!("unlabelled vertebra (grade {})", v.grade.number()),
        })
        .collect();
    let flagged = if flagged.is_empty() {
        "none".to_owned()
    } else {
        flagged.join(", ")
    };
    let (level, grade) = preselected(&case);
    let page = CasePage {
        nav: Nav::new(&user, "worklist"),
        number,
        status: describe(
            case.summary.status,
            case.summary.disposition,
            case.summary.confirmed_grade,
            case.summary.confirmed_level,
        ),
        pending: case.analysis_pending,
        patient: PatientView::new(case.findings.patient.as_ref()),
        window: query.window.as_str(),
        window_label: query.window.label(),
        image: image.map(|(_, (width, height))| ImageView {
            src: format!("/cases/{number}/key-image?window={}", query.window.as_str()),
            width,
            height,
            alt: format!(
                "Sagittal reformat of the spine, {}; flagged vertebrae boxed in red: {flagged}",
                query.window.label()
            ),
        }),
        vertebrae: case
            .findings
            .vertebrae
            .iter()
            .map(VertebraRow::new)
            .collect(),
        facts: facts(&case),
        actions: ACTIONS
            .iter()
            .map(|(value, label)| Choice {
                value: (*value).to_owned(),
                label: (*label).to_owned(),
                selected: *value == "confirm",
            })
            .collect(),
        levels: VertebraLevel::all()
            .map(|l| Choice {
                value: l.to_string(),
                label: l.to_string(),
                selected: Some(l) == level,
            })
            .collect(),
        grades: [
            GenantGrade::Mild,
            GenantGrade::Moderate,
            GenantGrade::Severe,
        ]
        .into_iter()
        .map(|g| Choice {
            value: g.number().to_string(),
            label: format!("{} ({})", g.number(), grade_name(g)),
            selected: g == grade,
        })
        .collect(),
        audit: case.decisions.iter().map(AuditRow::new).collect(),
        others: others
            .iter()
            .filter(|c| c.case_number != number)
            .map(|c| OtherCase {
                number: c.case_number,
                date: c
                    .study_date
                    .map(spinewatch_triage::queue::format_date)
                    .unwrap_or_else(|| "date not recorded".into()),
                standing: describe(
                    c.status,
                    c.disposition,
                    c.confirmed_grade,
                    c.confirmed_level,
                ),
            })
            .collect(),
        flagged,
    };
    let html = page.render().map_err(|source| Error::Render {
        page: "case",
        source,
    })?;
    Ok(Html(html).into_response())
}

fn grade_name(g: GenantGrade) -> &'static str {
    match g {
        GenantGrade::Normal => "normal",
        GenantGrade::Mild => "mild",
        GenantGrade::Moderate => "moderate",
        GenantGrade::Severe => "severe",
    }
}

/// The decision form as posted; a missing field is empty.
#[derive(Deserialize)]
pub(crate) struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    grade: String,
    #[serde(default)]
    note: String,
}

/// `POST /cases/{n}/decision`: records the decision under the signed-in user and goes
/// back to the case page (303).
pub(crate) async fn decide(
    user: SignedIn,
    State(app): State<App>,
    UrlPath(n): UrlPath<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, PageError> {
    check_csrf(&user, &form.csrf)?;
    let action = parse_action(&form.action, &form.level, &form.grade)?;
    let case = find_case(&app, &n).await?;
    let number = case.summary.case_number;
    let decision = Decision {
        user: user.0.name.clone(),
        action,
        note: Some(form.note),
    };
    let store = app.web.store.clone();
    let study = case.summary.study_instance_uid;
    let decided = tokio::task::spawn_blocking(move || store.decide(&study, &decision))
        .await
        .map_err(Error::Join)?;
    match decided {
        Ok(_) => Ok(Redirect::to(&format!("/cases/{number}")).into_response()),
        Err(e @ spinewatch_triage::Error::InvalidDecision(_)) => {
            Err(PageError::BadRequest(e.to_string()))
        }
        Err(spinewatch_triage::Error::AnalysisPending { .. }) => Err(PageError::Conflict(
            "This study is being analysed again (more images arrived). Decide once its new \
             findings are in."
                .into(),
        )),
        Err(spinewatch_triage::Error::NotFound { .. }) => Err(PageError::NotFound),
        Err(source) => {
            tracing::debug!(error = %ErrorChain(&source), "Decision failed.");
            Err(Error::Store {
                operation: "record a decision",
                source,
            }
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_images_are_chosen_by_window_with_the_bone_one_as_fallback() {
        let both = vec![
            "images/1.2/sagittal.png".to_owned(),
            "images/1.2/sagittal-soft.png".to_owned(),
        ];
        assert_eq!(
            key_image_path(&both, Window::Bone),
            Some("images/1.2/sagittal.png")
        );
        assert_eq!(
            key_image_path(&both, Window::Soft),
            Some("images/1.2/sagittal-soft.png")
        );
        let bone = vec!["images/1.2/sagittal.png".to_owned()];
        assert_eq!(
            key_image_path(&bone, Window::Soft),
            Some("images/1.2/sagittal.png")
        );
        let older = vec!["key/L1.png".to_owned()];
        assert_eq!(key_image_path(&older, Window::Bone), Some("key/L1.png"));
        assert_eq!(key_image_path(&[], Window::Bone), None);
    }

    #[test]
    fn key_image_paths_stay_below_the_data_directory() {
        let dir = Path::new("/data");
        assert_eq!(
            below(dir, "images/a.png"),
            Some(PathBuf::from("/data/images/a.png"))
        );
        assert_eq!(below(dir, "../etc/passwd"), None);
        assert_eq!(below(dir, "/etc/passwd"), None);
        assert_eq!(below(dir, ""), None);
    }

    #[test]
    fn form_actions_map_to_decisions() {
        assert!(matches!(
            parse_action("confirm", "L1", "2"),
            Ok(Action::Confirm {
                grade: GenantGrade::Moderate,
                level: VertebraLevel::Lumbar(1)
            })
        ));
        assert!(matches!(
            parse_action("refer_radiologist", "", ""),
            Ok(Action::Refer)
        ));
        assert!(matches!(
            parse_action("cancer_pathway", "", ""),
            Ok(Action::Close(Disposition::CancerPathway))
        ));
        for (a, l, g) in [
            ("confirm", "L9", "2"),
            ("confirm", "L1", "4"),
            ("shelve", "", ""),
        ] {
            assert!(
                matches!(parse_action(a, l, g), Err(PageError::BadRequest(_))),
                "{a} {l} {g}"
            );
        }
    }
}
