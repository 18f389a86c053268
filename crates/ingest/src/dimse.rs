//! DIMSE command sets (PS3.7 section 9 and annex E): decoding requests, encoding the
//! C-ECHO and C-STORE responses, and the status codes we answer with.
//!
//! Command sets are always Implicit VR Little Endian and small (a few hundred bytes);
//! they are the only part of a message held in memory whole.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use crate::error::{Error, Result};
use crate::syntax::trim_uid;

/// Largest command set accepted; real ones are under 1 KiB.
pub const MAX_COMMAND_BYTES: usize = 64 << 10;

/// (0000,0800) Command Data Set Type: no data set follows.
const NO_DATA_SET: u16 = 0x0101;

/// DIMSE command fields (PS3.7 section E.1).
pub mod command_field {
    /// C-STORE-RQ.
    pub const C_STORE_RQ: u16 = 0x0001;
    /// C-STORE-RSP.
    pub const C_STORE_RSP: u16 = 0x8001;
    /// C-ECHO-RQ.
    pub const C_ECHO_RQ: u16 = 0x0030;
    /// C-ECHO-RSP.
    pub const C_ECHO_RSP: u16 = 0x8030;
    /// C-CANCEL-RQ (no response).
    pub const C_CANCEL_RQ: u16 = 0x0FFF;
}

/// The statuses we answer with (PS3.4 annex B.2.3 for C-STORE, PS3.7 annex C).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 0x0000: stored (or already stored: a duplicate is a success).
    Success,
    /// 0xA700: refused, out of resources (disk under the watermark, backlog full, disk
    /// full while writing); the PACS retries later.
    OutOfResources,
    /// 0xA900: the data set does not match the command (SOP Class or Instance UID).
    DataSetMismatch,
    /// 0xC000: cannot understand (unparsable data set, missing or invalid UIDs).
    CannotUnderstand,
    /// 0x0110: processing failure on our side (an I/O error other than a full disk,
    /// the sink failing).
    ProcessingFailure,
    /// 0x0122: the SOP class is not the one negotiated for the presentation context.
    SopClassNotSupported,
    /// 0x0211: a command we do not implement.
    UnrecognizedOperation,
}

impl Status {
    /// The code sent in (0000,0900) Status.
    pub fn code(self) -> u16 {
        match self {
            Self::Success => 0x0000,
            Self::OutOfResources => 0xA700,
            Self::DataSetMismatch => 0xA900,
            Self::CannotUnderstand => 0xC000,
            Self::ProcessingFailure => 0x0110,
            Self::SopClassNotSupported => 0x0122,
            Self::UnrecognizedOperation => 0x0211,
        }
    }

    /// The metric label: the code in hex (a closed set).
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "0000",
            Self::OutOfResources => "a700",
            Self::DataSetMismatch => "a900",
            Self::CannotUnderstand => "c000",
            Self::ProcessingFailure => "0110",
            Self::SopClassNotSupported => "0122",
            Self::UnrecognizedOperation => "0211",
        }
    }
}

/// A decoded request command set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// (0000,0100) Command Field.
    pub field: u16,
    /// (0000,0110) Message ID (absent in some malformed commands: 0).
    pub message_id: u16,
    /// Whether a data set follows ((0000,0800) other than 0x0101).
    pub has_data_set: bool,
    /// (0000,0002) Affected SOP Class UID, unpadded; empty when absent.
    pub affected_sop_class_uid: String,
    /// (0000,1000) Affected SOP Instance UID, unpadded; empty when absent.
    pub affected_sop_instance_uid: String,
}

impl Command {
    /// Decodes a command set (Implicit VR Little Endian).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let obj = InMemDicomObject::read_dataset_with_ts(bytes, &implicit_vr_le())
            .map_err(|e| Error::DecodeCommand(Box::new(e)))?;
        let uint = |tag| {
            obj.get(tag)
                .and_then(|e| e.to_int::<u16>().ok())
                .ok_or_else(|| Error::Protocol(format!("command set without a valid {tag}")))
        };
        let text = |tag| {
            obj.get(tag)
                .and_then(|e| e.to_str().ok())
                .map(|s| trim_uid(&s).to_owned())
                .unwrap_or_default()
        };
        Ok(Self {
            field: uint(tags::COMMAND_FIELD)?,
            message_id: uint(tags::MESSAGE_ID).unwrap_or(0),
            has_data_set: uint(tags::COMMAND_DATA_SET_TYPE)? != NO_DATA_SET,
            affected_sop_class_uid: text(tags::AFFECTED_SOP_CLASS_UID),
            affected_sop_instance_uid: text(tags::AFFECTED_SOP_INSTANCE_UID),
        })
    }

    /// Whether this is a request (responses have bit 15 of the command field set).
    pub fn is_request(&self) -> bool {
        self.field & 0x8000 == 0
    }
}

/// Encodes the response to `request` with `status`; `comment` goes to (0000,0902)
/// Error Comment on failures (never patient data: it reaches the PACS logs).
pub fn response(request: &Command, status: Status, comment: Option<&str>) -> Result<Vec<u8>> {
    let mut elements = vec![
        DataElement::new(
            tags::COMMAND_FIELD,
            VR::US,
            PrimitiveValue::from(request.field | 0x8000),
        ),
        DataElement::new(
            tags::MESSAGE_ID_BEING_RESPONDED_TO,
            VR::US,
            PrimitiveValue::from(request.message_id),
        ),
        DataElement::new(
            tags::COMMAND_DATA_SET_TYPE,
            VR::US,
            PrimitiveValue::from(NO_DATA_SET),
        ),
        DataElement::new(tags::STATUS, VR::US, PrimitiveValue::from(status.code())),
    ];
    if !request.affected_sop_class_uid.is_empty() {
        elements.push(DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(request.affected_sop_class_uid.as_str()),
        ));
    }
    if !request.affected_sop_instance_uid.is_empty() {
        elements.push(DataElement::new(
            tags::AFFECTED_SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(request.affected_sop_instance_uid.as_str()),
        ));
    }
    if let Some(c) = comment.filter(|_| status != Status::Success) {
        // Error Comment is LO: at most 64 characters.
        let c: String = c.chars().filter(char::is_ascii).take(64).collect();
        elements.push(DataElement::new(
            tags::ERROR_COMMENT,
            VR::LO,
            PrimitiveValue::from(c),
        ));
    }
    // `command_from_element_iter` computes (0000,0000) Command Group Length.
    let obj = InMemDicomObject::command_from_element_iter(elements);
    let mut out = Vec::with_capacity(256);
    obj.write_dataset_with_ts(&mut out, &implicit_vr_le())
        .map_err(|e| Error::EncodeCommand(Box::new(e)))?;
    Ok(out)
}

/// Implicit VR Little Endian, in which every command set is encoded.
fn implicit_vr_le() -> dicom_encoding::TransferSyntax {
    dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn request() -> Command {
        Command {
            field: command_field::C_STORE_RQ,
            message_id: 7,
            has_data_set: true,
            affected_sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            affected_sop_instance_uid: "1.2.3.4.5".into(),
        }
    }

    #[test]
    fn response_round_trips_with_even_padding() {
        let bytes = response(&request(), Status::OutOfResources, Some("disk full")).unwrap();
        assert_eq!(bytes.len() % 2, 0);
        let rsp = Command::decode(&bytes).unwrap();
        assert_eq!(rsp.field, command_field::C_STORE_RSP);
        assert!(!rsp.has_data_set);
        assert!(!rsp.is_request());
        assert_eq!(rsp.affected_sop_instance_uid, "1.2.3.4.5");
        let obj = InMemDicomObject::read_dataset_with_ts(&bytes[..], &implicit_vr_le()).unwrap();
        let status: u16 = obj.get(tags::STATUS).unwrap().to_int().unwrap();
        assert_eq!(status, 0xA700);
        let responded: u16 = obj
            .get(tags::MESSAGE_ID_BEING_RESPONDED_TO)
            .unwrap()
            .to_int()
            .unwrap();
        assert_eq!(responded, 7);
        // Group length: everything after the group length element itself (12 bytes).
        let len: u32 = obj
            .get(tags::COMMAND_GROUP_LENGTH)
            .unwrap()
            .to_int()
            .unwrap();
        assert_eq!(len as usize, bytes.len() - 12);
    }

    #[test]
    fn decodes_a_request_and_refuses_garbage() {
        let mut req = request();
        req.field = command_field::C_ECHO_RQ;
        // A response to a response is not a request, but encoding a request-shaped set
        // is what we need here: flip the bit back after encoding.
        let bytes = response(&req, Status::Success, None).unwrap();
        let back = Command::decode(&bytes).unwrap();
        assert_eq!(back.field, command_field::C_ECHO_RSP);
        assert!(Command::decode(&[1, 2, 3]).is_err());
    }
}
