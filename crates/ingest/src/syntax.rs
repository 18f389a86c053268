//! What we negotiate: the abstract syntaxes (Verification and the storage SOP classes)
//! and the transfer syntaxes (exactly those the volume crate decodes).

use dicom_dictionary_std::uids;

/// Verification SOP Class (C-ECHO, PS3.4 annex A).
pub const VERIFICATION: &str = uids::VERIFICATION;

/// Transfer syntaxes accepted for every presentation context: exactly what
/// `spinewatch-volume` decodes. A context proposing none of them is rejected
/// ("transfer syntaxes not supported") so the PACS converts or sends elsewhere.
pub const TRANSFER_SYNTAXES: &[&str] = &[
    uids::EXPLICIT_VR_LITTLE_ENDIAN,
    uids::IMPLICIT_VR_LITTLE_ENDIAN,
    uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    // Explicit VR Big Endian is retired (dicom-dictionary-std deprecates its constant),
    // but old modalities still send it and the volume crate decodes it.
    "1.2.840.10008.1.2.2",
    uids::JPEG_BASELINE8_BIT,
    uids::JPEG_EXTENDED12_BIT,
    uids::JPEG_LOSSLESS,
    uids::JPEG_LOSSLESS_SV1,
    uids::JPEGLS_LOSSLESS,
    uids::JPEGLS_NEAR_LOSSLESS,
    uids::JPEG2000_LOSSLESS,
    uids::JPEG2000,
    uids::RLE_LOSSLESS,
];

/// Storage SOP classes accepted (PS3.4 annex B). Not only CT: other studies are
/// received and then excluded with a reason by the study stage, which the product
/// counts; refusing them here would make the PACS retry them forever.
///
/// dicom-dictionary-std does not expose its SOP class table for iteration, so the list
/// is written out (the constants are checked by the compiler).
pub const STORAGE_SOP_CLASSES: &[&str] = &[
    // CT
    uids::CT_IMAGE_STORAGE,
    uids::ENHANCED_CT_IMAGE_STORAGE,
    uids::LEGACY_CONVERTED_ENHANCED_CT_IMAGE_STORAGE,
    // MR
    uids::MR_IMAGE_STORAGE,
    uids::ENHANCED_MR_IMAGE_STORAGE,
    uids::ENHANCED_MR_COLOR_IMAGE_STORAGE,
    uids::LEGACY_CONVERTED_ENHANCED_MR_IMAGE_STORAGE,
    uids::MR_SPECTROSCOPY_STORAGE,
    // Projection radiography and mammography
    uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE,
    uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
    uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
    uids::DIGITAL_INTRA_ORAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids::BREAST_TOMOSYNTHESIS_IMAGE_STORAGE,
    uids::X_RAY_ANGIOGRAPHIC_IMAGE_STORAGE,
    uids::ENHANCED_XA_IMAGE_STORAGE,
    uids::X_RAY_RADIOFLUOROSCOPIC_IMAGE_STORAGE,
    uids::X_RAY3_D_ANGIOGRAPHIC_IMAGE_STORAGE,
    // Nuclear medicine and PET
    uids::NUCLEAR_MEDICINE_IMAGE_STORAGE,
    uids::POSITRON_EMISSION_TOMOGRAPHY_IMAGE_STORAGE,
    uids::ENHANCED_PET_IMAGE_STORAGE,
    uids::LEGACY_CONVERTED_ENHANCED_PET_IMAGE_STORAGE,
    // Ultrasound
    uids::ULTRASOUND_IMAGE_STORAGE,
    uids::ULTRASOUND_MULTI_FRAME_IMAGE_STORAGE,
    uids::ENHANCED_US_VOLUME_STORAGE,
    // Secondary capture
    uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_SINGLE_BIT_SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_GRAYSCALE_BYTE_SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_GRAYSCALE_WORD_SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_TRUE_COLOR_SECONDARY_CAPTURE_IMAGE_STORAGE,
    // Radiotherapy
    uids::RT_IMAGE_STORAGE,
    uids::RT_DOSE_STORAGE,
    uids::RT_STRUCTURE_SET_STORAGE,
    uids::RT_PLAN_STORAGE,
    uids::RT_ION_PLAN_STORAGE,
    uids::RT_BEAMS_TREATMENT_RECORD_STORAGE,
    // Structured reports and documents
    uids::BASIC_TEXT_SR_STORAGE,
    uids::ENHANCED_SR_STORAGE,
    uids::COMPREHENSIVE_SR_STORAGE,
    uids::COMPREHENSIVE3_DSR_STORAGE,
    uids::EXTENSIBLE_SR_STORAGE,
    uids::KEY_OBJECT_SELECTION_DOCUMENT_STORAGE,
    uids::X_RAY_RADIATION_DOSE_SR_STORAGE,
    uids::ENHANCED_X_RAY_RADIATION_DOSE_SR_STORAGE,
    uids::ENCAPSULATED_PDF_STORAGE,
    // Presentation states, registration, segmentation, other images
    uids::GRAYSCALE_SOFTCOPY_PRESENTATION_STATE_STORAGE,
    uids::SPATIAL_REGISTRATION_STORAGE,
    uids::SEGMENTATION_STORAGE,
    uids::RAW_DATA_STORAGE,
    uids::VL_PHOTOGRAPHIC_IMAGE_STORAGE,
];

/// Every abstract syntax we accept: Verification, then the storage SOP classes.
pub fn abstract_syntaxes() -> impl Iterator<Item = &'static str> {
    std::iter::once(VERIFICATION).chain(STORAGE_SOP_CLASSES.iter().copied())
}

/// Whether `uid` is one of the transfer syntaxes we accept.
pub fn is_accepted_transfer_syntax(uid: &str) -> bool {
    TRANSFER_SYNTAXES.contains(&trim_uid(uid))
}

/// A UID as written in DICOM, without its NUL or space padding.
pub fn trim_uid(uid: &str) -> &str {
    uid.trim_end_matches(['\0', ' '])
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_encoding::TransferSyntaxIndex;
    use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

    #[test]
    fn transfer_syntaxes_are_the_ones_the_volume_crate_decodes() {
        let expected = [
            "1.2.840.10008.1.2",
            "1.2.840.10008.1.2.1",
            "1.2.840.10008.1.2.1.99",
            "1.2.840.10008.1.2.2",
            "1.2.840.10008.1.2.4.50",
            "1.2.840.10008.1.2.4.51",
            "1.2.840.10008.1.2.4.57",
            "1.2.840.10008.1.2.4.70",
            "1.2.840.10008.1.2.4.80",
            "1.2.840.10008.1.2.4.81",
            "1.2.840.10008.1.2.4.90",
            "1.2.840.10008.1.2.4.91",
            "1.2.840.10008.1.2.5",
        ];
        let mut got: Vec<_> = TRANSFER_SYNTAXES.to_vec();
        got.sort_unstable();
        let mut want = expected.to_vec();
        want.sort_unstable();
        assert_eq!(got, want);
        // dicom-ul only accepts a transfer syntax the registry can read data sets in
        // (deflate needs the registry's `deflate` feature).
        for ts in TRANSFER_SYNTAXES {
            let entry = TransferSyntaxRegistry.get(ts);
            assert!(entry.is_some_and(|t| !t.is_unsupported()), "{ts}");
        }
        assert!(is_accepted_transfer_syntax("1.2.840.10008.1.2.5\0"));
        assert!(!is_accepted_transfer_syntax("1.2.840.10008.1.2.4.53"));
    }

    #[test]
    fn storage_classes_are_distinct_and_under_the_storage_roots() {
        let mut all: Vec<_> = STORAGE_SOP_CLASSES.to_vec();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), STORAGE_SOP_CLASSES.len());
        assert!(
            all.iter()
                .all(|u| u.starts_with("1.2.840.10008.5.1.4.1.1."))
        );
        assert_eq!(abstract_syntaxes().next(), Some("1.2.840.10008.1.1"));
    }
}
