//! Shared by the web UI's tests: a store on a manual clock with a nurse and an admin,
//! cases queued through the journal as the pipeline queues them (with PNG key images and
//! the patient's identity), the router driven in-process (`oneshot`), and a small browser
//! that keeps cookies and reads forms.

#![allow(clippy::unwrap_used, dead_code)] // test helpers: a panic is the failure report; not every test uses every helper

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use spinewatch_core::genant::Heights;
use spinewatch_core::{GenantGrade, Vec3, VertebraLevel};
use spinewatch_triage::{
    CaseFindings, InstanceRecord, ManualClock, Outcome, PatientFacts, Role, Store, StudyFacts,
    VertebraFinding, patient_key,
};
use spinewatch_web::{ModelFacts, WebSettings, WebState};
use time::OffsetDateTime;
use time::macros::datetime;
use tower::ServiceExt;

/// The nurse's name and password.
pub const NURSE: (&str, &str) = ("nurse.a", "nurse password 1");
/// The admin's name and password.
pub const ADMIN: (&str, &str) = ("admin.a", "admin password 1");
/// The site secret of the patient keys.
pub const SECRET: &[u8] = b"web test secret";
/// The metrics text the status page reads.
pub const METRICS: &str = "# TYPE spinewatch_studies_total counter\n\
    spinewatch_studies_total{outcome=\"positive\"} 7\n\
    spinewatch_studies_total{outcome=\"negative\"} 11\n\
    spinewatch_studies_total{outcome=\"excluded\"} 3\n\
    spinewatch_studies_total{outcome=\"not_analysable\"} 2\n\
    spinewatch_exclusions_total{reason=\"age\"} 2\n\
    spinewatch_exclusions_total{reason=\"not_ct\"} 1\n\
    spinewatch_not_analysable_total{reason=\"no_spine\"} 2\n\
    spinewatch_analysis_failures_total{kind=\"panic\"} 1\n\
    spinewatch_instances_received_total 4242\n\
    spinewatch_execution_provider{provider=\"cpu\"} 1\n\
    spinewatch_execution_provider{provider=\"cuda\"} 0\n";

/// When every test starts.
pub fn t0() -> OffsetDateTime {
    datetime!(2025-03-03 08:00 UTC)
}

/// The store, its clock, the data directory and the router.
pub struct Fixture {
    pub store: Store,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
    pub app: Router,
}

impl Fixture {
    /// An empty queue with the nurse and the admin.
    pub fn new() -> Self {
        let clock = ManualClock::new(t0());
        let store = Store::open_in_memory().unwrap().with_clock(clock.clone());
        for ((name, password), role) in [(NURSE, Role::Nurse), (ADMIN, Role::Admin)] {
            let hash = spinewatch_web::password::hash(password).unwrap();
            store.add_user(name, role, &hash).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let app = spinewatch_web::router(WebState {
            store: store.clone(),
            data_dir: dir.path().to_owned(),
            metrics: Arc::new(|| METRICS.to_owned()),
            model: ModelFacts {
                version: "vertebra-fracture 1.0.0".into(),
                execution_provider: "cpu".into(),
            },
            settings: WebSettings::default(),
        });
        Self {
            store,
            clock,
            dir,
            app,
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A browser on the app, signed out.
    pub fn browser(&self) -> Browser {
        Browser {
            app: self.app.clone(),
            cookies: BTreeMap::new(),
        }
    }

    /// A browser signed in as `(name, password)`.
    pub async fn signed_in(&self, who: (&str, &str)) -> Browser {
        let mut b = self.browser();
        let r = b.sign_in(who.0, who.1).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        b
    }

    /// Queues a positive study of `patient` through the journal (as the pipeline does),
    /// with key images when `images` is given (bone, soft); returns its case number.
    pub fn queue(&self, study: &Study<'_>) -> i64 {
        let key = patient_key(SECRET, study.patient.id);
        let instance = InstanceRecord {
            sop_instance_uid: format!("{}.1.1", study.uid),
            study_instance_uid: study.uid.to_owned(),
            series_instance_uid: format!("{}.1", study.uid),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            modality: Some("CT".into()),
            patient_key: key,
            path: format!("spool/{}.dcm", study.uid).into(),
            bytes: 1000,
        };
        self.store.record_instance(&instance).unwrap();
        self.clock.advance(Duration::from_secs(60));
        let due = self
            .store
            .complete_due(Duration::from_secs(30), Duration::from_secs(600))
            .unwrap();
        let generation = due
            .iter()
            .find(|s| s.study_instance_uid == study.uid)
            .unwrap()
            .generation;
        self.store.claim(study.uid, generation).unwrap();
        let mut key_images = Vec::new();
        for (file, size) in [
            ("sagittal.png", study.bone),
            ("sagittal-soft.png", study.soft),
        ] {
            if let Some((w, h)) = size {
                let rel = format!("images/{}/{file}", study.uid);
                write_png(&self.data_dir().join(&rel), w, h);
                key_images.push(rel);
            }
        }
        let findings = CaseFindings {
            model_version: "vertebra-fracture 1.0.0".into(),
            execution_provider: "cpu".into(),
            probability: study.vertebrae.iter().map(|v| v.2).fold(0.0, f64::max),
            vertebrae: study.vertebrae.iter().map(|&v| vertebra(v)).collect(),
            key_images,
            study: Some(StudyFacts {
                accession_number: Some(format!("ACC-{}", study.uid)),
                study_description: Some("CT chest abdomen pelvis".into()),
                manufacturer: Some(study.scanner.0.into()),
                scanner_model: Some(study.scanner.1.into()),
                station_name: Some("CT1".into()),
                institution: Some("General Hospital".into()),
                series_number: Some(3),
                series_description: Some("Bone 1.0".into()),
                slices: 400,
                spacing_mm: [0.7, 0.7, 1.0],
                convolution_kernel: Some("B70f".into()),
                patient_age_years: Some(72.0),
            }),
            patient: Some(PatientFacts {
                id: Some(study.patient.id.into()),
                name: Some(study.patient.name.into()),
                birth_date: Some(study.patient.birth_date.into()),
                sex: Some("F".into()),
            }),
        };
        self.store
            .finish(
                study.uid,
                generation,
                Outcome::Positive {
                    findings,
                    study_date: Some(study.date),
                },
            )
            .unwrap();
        self.store
            .case(study.uid)
            .unwrap()
            .unwrap()
            .summary
            .case_number
    }
}

/// A patient's identity.
#[derive(Debug, Clone, Copy)]
pub struct Patient<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub birth_date: &'a str,
}

/// The usual patient: identifiers that must never reach a URL or a log.
pub const JANE: Patient<'static> = Patient {
    id: "PID-7731",
    name: "Quimby^Jane^Ann",
    birth_date: "1951-04-17",
};
/// Another patient.
pub const JOHN: Patient<'static> = Patient {
    id: "PID-5512",
    name: "Dorrington^John",
    birth_date: "1946-11-02",
};

/// A study to queue.
#[derive(Debug, Clone)]
pub struct Study<'a> {
    pub uid: &'a str,
    pub patient: Patient<'a>,
    pub date: time::Date,
    /// `(level, model grade, probability)`; flagged when the grade is not 0.
    pub vertebrae: Vec<(&'a str, u8, f64)>,
    /// Manufacturer and model.
    pub scanner: (&'a str, &'a str),
    /// Size of the bone-window key image, if one is written.
    pub bone: Option<(u32, u32)>,
    /// Size of the soft-tissue one, if one is written.
    pub soft: Option<(u32, u32)>,
}

impl<'a> Study<'a> {
    /// A study of `patient` with L1 grade 2 flagged, both key images, dated `date`.
    pub fn l1(uid: &'a str, patient: Patient<'a>, date: time::Date) -> Self {
        Self {
            uid,
            patient,
            date,
            vertebrae: vec![("T12", 0, 0.08), ("L1", 2, 0.91), ("L2", 1, 0.55)],
            scanner: ("SIEMENS", "SOMATOM Force"),
            bone: Some((120, 300)),
            soft: Some((120, 300)),
        }
    }
}

fn vertebra((level, grade, probability): (&str, u8, f64)) -> VertebraFinding {
    let level: VertebraLevel = level.parse().unwrap();
    let grade = GenantGrade::try_from(grade).unwrap();
    VertebraFinding {
        label: Some(level),
        centre_mm: Vec3::new(0.0, 10.0, -100.0 - 30.0 * level.index() as f64),
        probability,
        flagged: grade.is_fracture(),
        grade,
        morphometry_grade: Some(grade),
        heights_mm: Some(Heights {
            anterior: 18.5,
            middle: 21.0,
            posterior: 26.25,
        }),
        height_loss: Some(0.295),
    }
}

/// Writes a `width` x `height` grey PNG.
pub fn write_png(path: &Path, width: u32, height: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    let pixels: Vec<u8> = (0..width * height).map(|i| (i % 251) as u8).collect();
    writer.write_image_data(&pixels).unwrap();
}

/// An answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
    pub body: String,
}

impl Answer {
    /// The `Location` header.
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

/// A browser: keeps cookies, posts forms.
#[derive(Clone)]
pub struct Browser {
    pub app: Router,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    /// Sends a request with the cookies, and keeps those the answer sets.
    pub async fn send(&mut self, request: axum::http::request::Builder, body: Body) -> Answer {
        let mut request = request;
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(header::COOKIE, cookie);
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        for set in headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        }
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Answer {
        self.send(Request::get(path), Body::empty()).await
    }

    /// `GET path` with extra headers.
    pub async fn get_with(&mut self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = Request::get(path);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        self.send(request, Body::empty()).await
    }

    /// `POST path` with an urlencoded form.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let request =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        self.send(request, Body::from(body)).await
    }

    /// Opens the sign-in page and posts the form with `name` and `password`.
    pub async fn sign_in(&mut self, name: &str, password: &str) -> Answer {
        let page = self.get("/login").await;
        assert_eq!(page.status, StatusCode::OK);
        let csrf = input_value(&page.body, "csrf");
        self.post_form(
            "/login",
            &[("name", name), ("password", password), ("csrf", &csrf)],
        )
        .await
    }
}

/// Percent-encodes a form value.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `value` of the first `<input name="{name}" ...>` of a page.
pub fn input_value(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no input {name} in {html}"));
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find('>').unwrap();
    attr(&html[start..end], "value").unwrap_or_default()
}

/// The value of attribute `name` in a tag's text.
pub fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let at = tag.find(&needle)? + needle.len();
    let end = tag[at..].find('"')?;
    Some(tag[at..at + end].to_owned())
}

/// Every value of `href`, `src` and `action` attributes of a page.
pub fn urls(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for name in ["href", "src", "action"] {
        let needle = format!(" {name}=\"");
        let mut rest = html;
        while let Some(at) = rest.find(&needle) {
            rest = &rest[at + needle.len()..];
            let end = rest.find('"').unwrap();
            out.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    out
}

/// The text of the element whose opening tag contains `marker` (up to its closing `</tag>`).
pub fn element<'a>(html: &'a str, tag: &str, marker: &str) -> Option<&'a str> {
    let at = html.find(marker)?;
    let start = html[..at].rfind(&format!("<{tag}"))?;
    let end = at + html[at..].find(&format!("</{tag}>"))?;
    Some(&html[start..end])
}

/// Every `<tbody class="patient" ...>` section of the worklist.
pub fn patient_bodies(html: &str) -> Vec<&str> {
    html.split("<tbody class=\"patient\"")
        .skip(1)
        .map(|s| &s[..s.find("</tbody>").unwrap()])
        .collect()
}

/// The identifiers of `patient` that must not leak: ID, name parts, birth date.
pub fn identifiers(patient: Patient<'_>) -> Vec<String> {
    let mut ids = vec![patient.id.to_owned(), patient.birth_date.to_owned()];
    ids.extend(patient.name.split('^').map(str::to_owned));
    ids.push(patient.birth_date.replace('-', ""));
    ids
}

/// The directory of a key image.
pub fn image_path(dir: &Path, uid: &str, file: &str) -> PathBuf {
    dir.join("images").join(uid).join(file)
}

/// The opening tag (`<img ...>`) that contains `marker`.
pub fn tag<'a>(html: &'a str, marker: &str) -> Option<&'a str> {
    let at = html.find(marker)?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    Some(&html[start..=end])
}
