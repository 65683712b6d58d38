//! Chinese first, English on request: the page language (a cookie, default
//! zh-CN) and the labels of the register's and event log's codes.
//!
//! Strings sit at their call site as `lang.t("住户", "Residents")`, so a page
//! reads in both languages at once and nothing can go missing from a table.
//! Error messages from the library stay in English.

use crate::domain::{IdKind, PersonStatus, ResidentRole};
use crate::store::addresses::HouseholdKind;
use crate::store::console::ConsoleRole;
use crate::store::events::{AccessResult, EventKind};

pub const COOKIE: &str = "gh_lang";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    pub fn t(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    /// The `lang` attribute of the page.
    pub fn html(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    pub fn from_code(s: &str) -> Option<Lang> {
        match s {
            "zh" | "zh-CN" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }

    /// The switch link's text: the other language's own name.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Zh => "中文",
            Lang::En => "English",
        }
    }

    pub fn role(self, r: ResidentRole) -> &'static str {
        match r {
            ResidentRole::Owner => self.t("业主", "owner"),
            ResidentRole::Family => self.t("家属", "family"),
            ResidentRole::Tenant => self.t("租户", "tenant"),
            ResidentRole::Staff => self.t("员工", "staff"),
            ResidentRole::Guard => self.t("保安", "guard"),
        }
    }

    pub fn status(self, s: PersonStatus) -> &'static str {
        match s {
            PersonStatus::Active => self.t("正常", "active"),
            PersonStatus::Suspended => self.t("已暂停", "suspended"),
            PersonStatus::MovedOut => self.t("已迁出", "moved out"),
        }
    }

    pub fn household(self, k: HouseholdKind) -> &'static str {
        match k {
            HouseholdKind::OwnerOccupied => self.t("自住", "owner-occupied"),
            HouseholdKind::Rented => self.t("出租", "rented"),
            HouseholdKind::SharedRental => self.t("群租", "shared rental"),
            HouseholdKind::Dormitory => self.t("宿舍", "dormitory"),
            HouseholdKind::Shop => self.t("商铺", "shop"),
        }
    }

    pub fn id_kind(self, k: IdKind) -> &'static str {
        match k {
            IdKind::ResidentId => self.t("居民身份证", "resident ID card"),
            IdKind::Passport => self.t("护照", "passport"),
            IdKind::HkMacaoPermit => self.t("港澳通行证", "Hong Kong/Macao permit"),
            IdKind::TaiwanPermit => self.t("台胞证", "Taiwan permit"),
            IdKind::ForeignPermanent => self.t("外国人永居证", "foreign permanent residence"),
            IdKind::Other => self.t("其他证件", "other document"),
        }
    }

    pub fn console_role(self, r: ConsoleRole) -> &'static str {
        match r {
            ConsoleRole::Manager => self.t("物业经理", "manager"),
            ConsoleRole::Guard => self.t("保安", "guard"),
            ConsoleRole::Auditor => self.t("审计员", "auditor"),
        }
    }

    pub fn result(self, r: AccessResult) -> &'static str {
        match r {
            AccessResult::Granted => self.t("通过", "granted"),
            AccessResult::Denied => self.t("拒绝", "denied"),
        }
    }

    pub fn event_kind(self, k: EventKind) -> &'static str {
        match k {
            EventKind::Access => self.t("通行", "access"),
            EventKind::Alarm => self.t("报警", "alarm"),
            EventKind::Device => self.t("设备", "device"),
        }
    }

    pub fn credential(self, kind: &str) -> String {
        let s = match kind {
            "card" => self.t("门禁卡", "card"),
            "pin" => self.t("密码", "PIN"),
            "face" => self.t("人脸", "face"),
            "plate" => self.t("车牌", "plate"),
            "remote" => self.t("远程开门", "remote open"),
            "exit_button" => self.t("出门按钮", "exit button"),
            "household+face" => self.t("户号+人脸", "household + face"),
            other => return other.to_string(),
        };
        s.to_string()
    }

    /// An event's reason code in words; unknown codes are shown as they are.
    /// Every [`crate::event::EventReason`] is named here (a new one must be placed).
    pub fn reason(self, code: &str) -> String {
        use crate::event::EventReason as R;
        let Ok(reason) = code.parse::<R>() else {
            return code.to_string();
        };
        let s = match reason {
            R::UnknownCredential => self.t("未登记的凭证", "unknown credential"),
            R::Suspended => self.t("已暂停", "suspended"),
            R::MovedOut => self.t("已迁出", "moved out"),
            R::LeaseEnded => self.t("租期已满", "lease ended"),
            R::PermitEnded => self.t("居住证已过期", "residence permit expired"),
            R::NotYetValid => self.t("尚未生效", "not yet valid"),
            R::GateNotAllowed => self.t("无权使用此门", "gate not allowed"),
            R::OutsideTimeWindow => self.t("不在允许时段", "outside time window"),
            R::VisitorPassExpired => self.t("访客通行证已过期", "visitor pass expired"),
            R::VisitorPassNotYetValid => self.t("访客通行证尚未生效", "visitor pass not yet valid"),
            R::VisitorPassUsedUp => self.t("访客通行证次数已用完", "visitor pass used up"),
            R::VisitorPassWrongGate => {
                self.t("访客通行证不含此门", "visitor pass not for this gate")
            }
            R::VisitorPassRevoked => self.t("访客通行证已撤销", "visitor pass revoked"),
            R::HostInactive => self.t("邀请人已停用", "host inactive"),
            R::AntiPassback => self.t("防潜回", "anti-passback"),
            R::ReaderLockedOut => self.t("读卡器已锁定", "reader locked out"),
            R::InvalidRecord => self.t("登记信息有误", "invalid record"),
            R::ReaderLockout => self.t("连续未知凭证，读卡器锁定", "reader lockout"),
            R::HeldOpen => self.t("门长时间未关", "door held open"),
            R::ForcedOpen => self.t("门被强行打开", "door forced open"),
            R::HeldOpenCleared => self.t("门已关闭", "held-open cleared"),
            R::ForcedOpenCleared => self.t("强开报警解除", "forced-open cleared"),
            R::Tamper => self.t("设备防拆报警", "tamper"),
            R::TamperCleared => self.t("防拆报警解除", "tamper cleared"),
            R::ReaderFault => self.t("读卡器故障", "reader fault"),
            R::ReaderRecovered => self.t("读卡器恢复", "reader recovered"),
            R::GateHardwareFailed => self.t("门硬件故障", "gate hardware failed"),
            R::EventStoreFailed => self.t("事件未能保存", "events not stored"),
            R::SiteLogRejected => self.t("拒绝了一条小区登记变更", "site register change refused"),
            R::DaemonStarted => self.t("系统启动", "gateway started"),
            R::DaemonStopped => self.t("系统停止", "gateway stopped"),
            R::AmbiguousPlate => self.t("车牌识别不确定", "ambiguous plate"),
            R::UnknownFace => self.t("陌生人脸", "unknown face"),
            R::RecurringStranger => {
                self.t("未登记人员多次出现", "unregistered face keeps coming back")
            }
            R::WatchlistMatch => self.t("布控名单命中", "watchlist match"),
            R::FaceRequired => self.t("需刷脸", "face required"),
            R::FaceMismatch => self.t("人脸与卡主不符", "face does not match the card"),
            R::FaceNotEnrolled => self.t("卡主未录入人脸", "card owner has no face enrolled"),
            R::CardRequired => self.t("需刷卡", "card required"),
            R::HouseholdRequired => self.t("需先输入房号", "key the household number first"),
            R::UnknownHousehold => self.t("房号不存在", "no such household number"),
            R::HouseholdMismatch => {
                self.t("人脸不是该户住户", "face is no member of the household")
            }
            R::HouseholdTimeout => self.t(
                "输入房号后超时未刷脸",
                "household number expired before a face was seen",
            ),
            R::FaceUnavailable => self.t("摄像头不可用", "no working camera"),
            R::CameraLost => self.t("摄像头断开", "camera lost"),
            R::CardFormatMismatch => self.t(
                "卡格式与登记不符",
                "card read in another format than enrolled",
            ),
            R::PinEntrySuspended => self.t("密码输入已暂停", "PIN entry suspended"),
            R::PinGuessing => self.t("疑似试探访客密码", "visitor PINs being guessed"),
            R::FaceModelFailed => self.t("人脸模型运行失败", "face model failed to run"),
            R::FaceModelRecovered => self.t("人脸模型恢复运行", "face model running again"),
            // Not translated yet: shown as stored.
            R::Watchlisted
            | R::PresentationAttack
            | R::RegisteredVehicle
            | R::Granted
            | R::UplinkBacklogDropped
            | R::CameraStreaming
            | R::CameraEnded
            | R::ConfigReloaded
            | R::ConfigReloadFailed => return code.to_string(),
        };
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_is_the_default_and_codes_round_trip() {
        assert_eq!(Lang::default(), Lang::Zh);
        for l in [Lang::Zh, Lang::En] {
            assert_eq!(Lang::from_code(l.code()), Some(l));
        }
        assert_eq!(Lang::from_code("fr"), None);
        assert_eq!(Lang::Zh.result(AccessResult::Granted), "通过");
        assert_eq!(Lang::En.result(AccessResult::Granted), "granted");
        assert_eq!(Lang::Zh.reason("lease_ended"), "租期已满");
        assert_eq!(Lang::En.reason("something_new"), "something_new");
    }
}
