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
            other => return other.to_string(),
        };
        s.to_string()
    }

    /// An event's reason code in words; unknown codes are shown as they are.
    pub fn reason(self, code: &str) -> String {
        let s = match code {
            "unknown_credential" => self.t("未登记的凭证", "unknown credential"),
            "suspended" => self.t("已暂停", "suspended"),
            "moved_out" => self.t("已迁出", "moved out"),
            "lease_ended" => self.t("租期已满", "lease ended"),
            "permit_ended" => self.t("居住证已过期", "residence permit expired"),
            "not_yet_valid" => self.t("尚未生效", "not yet valid"),
            "gate_not_allowed" => self.t("无权使用此门", "gate not allowed"),
            "outside_time_window" => self.t("不在允许时段", "outside time window"),
            "visitor_pass_expired" => self.t("访客通行证已过期", "visitor pass expired"),
            "visitor_pass_not_yet_valid" => {
                self.t("访客通行证尚未生效", "visitor pass not yet valid")
            }
            "visitor_pass_used_up" => self.t("访客通行证次数已用完", "visitor pass used up"),
            "visitor_pass_wrong_gate" => {
                self.t("访客通行证不含此门", "visitor pass not for this gate")
            }
            "visitor_pass_revoked" => self.t("访客通行证已撤销", "visitor pass revoked"),
            "host_inactive" => self.t("邀请人已停用", "host inactive"),
            "anti_passback" => self.t("防潜回", "anti-passback"),
            "reader_locked_out" => self.t("读卡器已锁定", "reader locked out"),
            "invalid_record" => self.t("登记信息有误", "invalid record"),
            "reader_lockout" => self.t("连续未知凭证，读卡器锁定", "reader lockout"),
            "held_open" => self.t("门长时间未关", "door held open"),
            "forced_open" => self.t("门被强行打开", "door forced open"),
            "held_open_cleared" => self.t("门已关闭", "held-open cleared"),
            "forced_open_cleared" => self.t("强开报警解除", "forced-open cleared"),
            "tamper" => self.t("设备防拆报警", "tamper"),
            "tamper_cleared" => self.t("防拆报警解除", "tamper cleared"),
            "reader_fault" => self.t("读卡器故障", "reader fault"),
            "reader_recovered" => self.t("读卡器恢复", "reader recovered"),
            "gate_hardware_failed" => self.t("门硬件故障", "gate hardware failed"),
            "daemon_started" => self.t("系统启动", "gateway started"),
            "daemon_stopped" => self.t("系统停止", "gateway stopped"),
            "ambiguous_plate" => self.t("车牌识别不确定", "ambiguous plate"),
            "unknown_face" => self.t("陌生人脸", "unknown face"),
            "recurring_stranger" => {
                self.t("未登记人员多次出现", "unregistered face keeps coming back")
            }
            "watchlist_match" => self.t("布控名单命中", "watchlist match"),
            "face_required" => self.t("需刷脸", "face required"),
            "face_mismatch" => self.t("人脸与卡主不符", "face does not match the card"),
            "face_not_enrolled" => self.t("卡主未录入人脸", "card owner has no face enrolled"),
            "card_required" => self.t("需刷卡", "card required"),
            "face_unavailable" => self.t("摄像头不可用", "no working camera"),
            "camera_lost" => self.t("摄像头断开", "camera lost"),
            "card_format_mismatch" => self.t(
                "卡格式与登记不符",
                "card read in another format than enrolled",
            ),
            "pin_entry_suspended" => self.t("密码输入已暂停", "PIN entry suspended"),
            "pin_guessing" => self.t("疑似试探访客密码", "visitor PINs being guessed"),
            "face_model_failed" => self.t("人脸模型运行失败", "face model failed to run"),
            "face_model_recovered" => self.t("人脸模型恢复运行", "face model running again"),
            other => return other.to_string(),
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
