#include "jinja_interpreter.h"

#include <cmath>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "jinja_builtins.h"
#include "tandem/core/status.h"

namespace tandem::tokenizer::jinja {
namespace {

using K = Value::Kind;
constexpr const char* kLinePrefix = "chat template line ";

absl::Status AtLine(int line, const absl::Status& s) {
  if (s.ok() || absl::StartsWith(s.message(), kLinePrefix)) return s;
  return absl::Status(s.code(), absl::StrCat(kLinePrefix, line, ": ", s.message()));
}

absl::Status Error(int line, const std::string& msg) {
  return absl::InvalidArgumentError(absl::StrCat(kLinePrefix, line, ": ", msg));
}

enum class Flow { kNormal, kBreak, kContinue };

int64_t AsInt(const Value& v) { return v.kind == K::kBool ? (v.b ? 1 : 0) : v.i; }

absl::StatusOr<Value> Arithmetic(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value::Str(a.Str() + b.Str());
  if (a.is_undefined() || b.is_undefined()) {
    const Value& u = a.is_undefined() ? a : b;
    return absl::InvalidArgumentError(absl::StrCat("'", u.s.empty() ? "value" : u.s, "' is undefined"));
  }
  const bool ints = (a.kind == K::kInt || a.kind == K::kBool) && (b.kind == K::kInt || b.kind == K::kBool);
  const bool nums = a.is_number() && b.is_number();
  if (op == "+") {
    if (ints) return Value::Int(AsInt(a) + AsInt(b));
    if (nums) return Value::Float(a.AsDouble() + b.AsDouble());
    if (a.is_string() && b.is_string()) return Value::Str(a.s + b.s);
    if (a.kind == K::kList && b.kind == K::kList) {
      List out = *a.list;
      out.insert(out.end(), b.list->begin(), b.list->end());
      return Value::MakeList(std::move(out));
    }
  } else if (op == "-") {
    if (ints) return Value::Int(AsInt(a) - AsInt(b));
    if (nums) return Value::Float(a.AsDouble() - b.AsDouble());
  } else if (op == "*") {
    if (ints) return Value::Int(AsInt(a) * AsInt(b));
    if (nums) return Value::Float(a.AsDouble() * b.AsDouble());
    const Value* seq = a.is_string() || a.kind == K::kList ? &a : &b;
    const Value* count = seq == &a ? &b : &a;
    if ((seq->is_string() || seq->kind == K::kList) && (count->kind == K::kInt || count->kind == K::kBool)) {
      int64_t n = std::max<int64_t>(0, AsInt(*count));
      if (seq->is_string()) {
        std::string out;
        for (int64_t k = 0; k < n; ++k) out += seq->s;
        return Value::Str(out);
      }
      List out;
      for (int64_t k = 0; k < n; ++k) out.insert(out.end(), seq->list->begin(), seq->list->end());
      return Value::MakeList(std::move(out));
    }
  } else if (op == "/") {
    if (nums) {
      if (b.AsDouble() == 0) return absl::InvalidArgumentError("division by zero");
      return Value::Float(a.AsDouble() / b.AsDouble());
    }
  } else if (op == "//" || op == "%") {
    if (ints) {
      int64_t x = AsInt(a), y = AsInt(b);
      if (y == 0) return absl::InvalidArgumentError("integer division or modulo by zero");
      int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {
        --q;
        r += y;
      }
      return Value::Int(op == "//" ? q : r);
    }
    if (nums) {
      double x = a.AsDouble(), y = b.AsDouble();
      if (y == 0) return absl::InvalidArgumentError("float division or modulo by zero");
      double q = std::floor(x / y);
      return Value::Float(op == "//" ? q : x - q * y);
    }
  } else if (op == "**") {
    if (ints && AsInt(b) >= 0) {
      int64_t r = 1;
      for (int64_t k = 0; k < AsInt(b); ++k) r *= AsInt(a);
      return Value::Int(r);
    }
    if (nums) return Value::Float(std::pow(a.AsDouble(), b.AsDouble()));
  }
  return absl::InvalidArgumentError(absl::StrCat("unsupported operand types for ", op, ": '", KindName(a), "' and '",
                                                 KindName(b), "'"));
}

class Interpreter {
 public:
  explicit Interpreter(const Value& variables) {
    scopes_.emplace_back();
    for (const auto& [k, v] : *variables.dict) scopes_.back()[k] = v;
  }

  absl::Status Exec(const Body& body, std::string* out, Flow* flow) {
    for (const auto& node : body) {
      TANDEM_RETURN_IF_ERROR(AtLine(node->line, ExecNode(*node, out, flow)));
      if (*flow != Flow::kNormal) return absl::OkStatus();
    }
    return absl::OkStatus();
  }

 private:
  using Scope = absl::flat_hash_map<std::string, Value>;

  Value Lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    return MakeGlobal(name);
  }

  absl::Status ExecNode(const Node& n, std::string* out, Flow* flow) {
    switch (n.kind) {
      case Node::Kind::kText:
        *out += n.text;
        return absl::OkStatus();
      case Node::Kind::kOutput: {
        TANDEM_ASSIGN_OR_RETURN(Value v, Eval(*n.expr));
        *out += v.Str();
        return absl::OkStatus();
      }
      case Node::Kind::kIf:
        for (size_t k = 0; k < n.conds.size(); ++k) {
          TANDEM_ASSIGN_OR_RETURN(Value c, Eval(*n.conds[k]));
          if (c.Truthy()) return Exec(n.bodies[k], out, flow);
        }
        return Exec(n.else_body, out, flow);
      case Node::Kind::kFor:
        return ExecFor(n, out);
      case Node::Kind::kSet: {
        TANDEM_ASSIGN_OR_RETURN(Value v, Eval(*n.expr));
        return Assign(n, std::move(v));
      }
      case Node::Kind::kSetBlock: {
        std::string captured;
        Flow inner = Flow::kNormal;
        TANDEM_RETURN_IF_ERROR(Exec(n.bodies[0], &captured, &inner));
        scopes_.back()[n.targets[0]] = Value::Str(std::move(captured));
        return absl::OkStatus();
      }
      case Node::Kind::kMacro:
        scopes_.back()[n.name] = MakeMacro(n);
        return absl::OkStatus();
      case Node::Kind::kBreak:
      case Node::Kind::kContinue:
        if (loop_depth_ == 0) return Error(n.line, "'break'/'continue' outside a loop");
        *flow = n.kind == Node::Kind::kBreak ? Flow::kBreak : Flow::kContinue;
        return absl::OkStatus();
      case Node::Kind::kScope:
        return Exec(n.bodies[0], out, flow);
    }
    return absl::OkStatus();
  }

  absl::Status Assign(const Node& n, Value v) {
    if (!n.attr.empty()) {
      Value ns = Lookup(n.targets[0]);
      if (ns.kind != K::kNamespace) {
        return Error(n.line, absl::StrCat("cannot assign attribute '", n.attr, "' of '", n.targets[0],
                                          "': it is a ", KindName(ns), ", not a namespace"));
      }
      ns.Set(n.attr, std::move(v));
      return absl::OkStatus();
    }
    if (n.targets.size() == 1) {
      scopes_.back()[n.targets[0]] = std::move(v);
      return absl::OkStatus();
    }
    TANDEM_ASSIGN_OR_RETURN(List items, Iterate(v));
    if (items.size() != n.targets.size()) {
      return Error(n.line, absl::StrCat("cannot unpack ", items.size(), " values into ", n.targets.size(), " names"));
    }
    for (size_t k = 0; k < items.size(); ++k) scopes_.back()[n.targets[k]] = items[k];
    return absl::OkStatus();
  }

  absl::Status BindTargets(const Node& n, const Value& item) {
    if (n.targets.size() == 1) {
      scopes_.back()[n.targets[0]] = item;
      return absl::OkStatus();
    }
    TANDEM_ASSIGN_OR_RETURN(List parts, Iterate(item));
    if (parts.size() != n.targets.size()) {
      return Error(n.line, absl::StrCat("cannot unpack ", parts.size(), " values into ", n.targets.size(), " loop variables"));
    }
    for (size_t k = 0; k < parts.size(); ++k) scopes_.back()[n.targets[k]] = parts[k];
    return absl::OkStatus();
  }

  absl::Status ExecFor(const Node& n, std::string* out) {
    TANDEM_ASSIGN_OR_RETURN(Value iterable, Eval(*n.expr));
    TANDEM_ASSIGN_OR_RETURN(List all, Iterate(iterable));
    scopes_.emplace_back();
    ++loop_depth_;
    List items;
    if (n.filter) {
      for (const auto& item : all) {
        TANDEM_RETURN_IF_ERROR(BindTargets(n, item));
        auto keep = Eval(*n.filter);
        if (!keep.ok()) return keep.status();
        if (keep->Truthy()) items.push_back(item);
      }
    } else {
      items = std::move(all);
    }
    const int64_t len = static_cast<int64_t>(items.size());
    absl::Status status;
    for (int64_t k = 0; k < len; ++k) {
      TANDEM_RETURN_IF_ERROR(BindTargets(n, items[k]));
      Value loop = Value::MakeDict({
          {"index", Value::Int(k + 1)},
          {"index0", Value::Int(k)},
          {"revindex", Value::Int(len - k)},
          {"revindex0", Value::Int(len - k - 1)},
          {"first", Value::Bool(k == 0)},
          {"last", Value::Bool(k == len - 1)},
          {"length", Value::Int(len)},
          {"depth", Value::Int(1)},
          {"depth0", Value::Int(0)},
          {"previtem", k > 0 ? items[k - 1] : Value::Undefined("previtem")},
          {"nextitem", k + 1 < len ? items[k + 1] : Value::Undefined("nextitem")},
      });
      loop.Set("cycle", Value::MakeFunction([k](CallArgs& a) -> absl::StatusOr<Value> {
        if (a.positional.empty()) return absl::InvalidArgumentError("loop.cycle() needs arguments");
        return a.positional[static_cast<size_t>(k) % a.positional.size()];
      }));
      scopes_.back()["loop"] = loop;
      Flow flow = Flow::kNormal;
      status = Exec(n.bodies[0], out, &flow);
      if (!status.ok() || flow == Flow::kBreak) break;
    }
    --loop_depth_;
    scopes_.pop_back();
    TANDEM_RETURN_IF_ERROR(status);
    if (len == 0) {
      Flow flow = Flow::kNormal;
      return Exec(n.else_body, out, &flow);
    }
    return absl::OkStatus();
  }

  Value MakeMacro(const Node& n) {
    const Node* node = &n;
    return Value::MakeFunction([this, node](CallArgs& a) -> absl::StatusOr<Value> {
      Scope scope;
      for (size_t k = 0; k < node->params.size(); ++k) {
        const Value* v = a.Get(k, node->params[k]);
        if (v != nullptr) {
          scope[node->params[k]] = *v;
        } else if (node->defaults[k]) {
          TANDEM_ASSIGN_OR_RETURN(scope[node->params[k]], Eval(*node->defaults[k]));
        } else {
          scope[node->params[k]] = Value::Undefined(node->params[k]);
        }
      }
      if (a.positional.size() > node->params.size()) {
        return Error(node->line, absl::StrCat("macro '", node->name, "' takes ", node->params.size(),
                                              " arguments, ", a.positional.size(), " given"));
      }
      scopes_.push_back(std::move(scope));
      const int saved_depth = loop_depth_;
      loop_depth_ = 0;
      std::string out;
      Flow flow = Flow::kNormal;
      absl::Status s = Exec(node->bodies[0], &out, &flow);
      loop_depth_ = saved_depth;
      scopes_.pop_back();
      TANDEM_RETURN_IF_ERROR(s);
      return Value::Str(std::move(out));
    });
  }

  absl::Status EvalArgs(const Expr& e, size_t first, CallArgs* args) {
    for (size_t k = first; k < e.args.size(); ++k) {
      TANDEM_ASSIGN_OR_RETURN(Value v, Eval(*e.args[k]));
      args->positional.push_back(std::move(v));
    }
    for (const auto& [name, expr] : e.kwargs) {
      TANDEM_ASSIGN_OR_RETURN(Value v, Eval(*expr));
      args->keyword.emplace_back(name, std::move(v));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Value> Eval(const Expr& e) {
    auto r = EvalInner(e);
    if (!r.ok()) return AtLine(e.line, r.status());
    return r;
  }

  absl::StatusOr<Value> EvalInner(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.value;
      case Expr::Kind::kName:
        return Lookup(e.name);
      case Expr::Kind::kAttr: {
        TANDEM_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
        return GetAttr(obj, e.name);
      }
      case Expr::Kind::kItem: {
        TANDEM_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
        TANDEM_ASSIGN_OR_RETURN(Value key, Eval(*e.args[1]));
        return GetItem(obj, key);
      }
      case Expr::Kind::kSlice: {
        TANDEM_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
        Value parts[3];
        for (int k = 0; k < 3; ++k) {
          if (e.args[k + 1]) {
            TANDEM_ASSIGN_OR_RETURN(parts[k], Eval(*e.args[k + 1]));
          }
        }
        return Slice(obj, parts[0], parts[1], parts[2]);
      }
      case Expr::Kind::kCall: {
        TANDEM_ASSIGN_OR_RETURN(Value fn, Eval(*e.args[0]));
        if (fn.kind != K::kFunction) {
          if (fn.is_undefined()) return Error(e.line, absl::StrCat("'", fn.s, "' is undefined and cannot be called"));
          return Error(e.line, absl::StrCat("'", KindName(fn), "' object is not callable"));
        }
        CallArgs args;
        TANDEM_RETURN_IF_ERROR(EvalArgs(e, 1, &args));
        return (*fn.fn)(args);
      }
      case Expr::Kind::kFilter: {
        TANDEM_ASSIGN_OR_RETURN(Value input, Eval(*e.args[0]));
        CallArgs args;
        TANDEM_RETURN_IF_ERROR(EvalArgs(e, 1, &args));
        return ApplyFilter(e.name, input, args);
      }
      case Expr::Kind::kTest: {
        TANDEM_ASSIGN_OR_RETURN(Value input, Eval(*e.args[0]));
        CallArgs args;
        TANDEM_RETURN_IF_ERROR(EvalArgs(e, 1, &args));
        TANDEM_ASSIGN_OR_RETURN(bool r, ApplyTest(e.name, input, args));
        return Value::Bool(r != e.negated);
      }
      case Expr::Kind::kNot: {
        TANDEM_ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
        return Value::Bool(!v.Truthy());
      }
      case Expr::Kind::kNeg:
      case Expr::Kind::kPos: {
        TANDEM_ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
        bool neg = e.kind == Expr::Kind::kNeg;
        if (v.kind == K::kInt || v.kind == K::kBool) return Value::Int(neg ? -AsInt(v) : AsInt(v));
        if (v.kind == K::kFloat) return Value::Float(neg ? -v.f : v.f);
        return Error(e.line, absl::StrCat("bad operand type for unary ", neg ? "-" : "+", ": '", KindName(v), "'"));
      }
      case Expr::Kind::kBinary: {
        TANDEM_ASSIGN_OR_RETURN(Value a, Eval(*e.args[0]));
        TANDEM_ASSIGN_OR_RETURN(Value b, Eval(*e.args[1]));
        return Arithmetic(e.name, a, b);
      }
      case Expr::Kind::kAnd: {
        TANDEM_ASSIGN_OR_RETURN(Value a, Eval(*e.args[0]));
        if (!a.Truthy()) return a;
        return Eval(*e.args[1]);
      }
      case Expr::Kind::kOr: {
        TANDEM_ASSIGN_OR_RETURN(Value a, Eval(*e.args[0]));
        if (a.Truthy()) return a;
        return Eval(*e.args[1]);
      }
      case Expr::Kind::kCompare: {
        TANDEM_ASSIGN_OR_RETURN(Value left, Eval(*e.args[0]));
        for (size_t k = 0; k < e.ops.size(); ++k) {
          TANDEM_ASSIGN_OR_RETURN(Value right, Eval(*e.args[k + 1]));
          const std::string& op = e.ops[k];
          bool r = false;
          if (op == "==") {
            r = Equal(left, right);
          } else if (op == "!=") {
            r = !Equal(left, right);
          } else if (op == "<") {
            TANDEM_ASSIGN_OR_RETURN(r, Less(left, right));
          } else if (op == ">") {
            TANDEM_ASSIGN_OR_RETURN(r, Less(right, left));
          } else if (op == "<=") {
            TANDEM_ASSIGN_OR_RETURN(bool gt, Less(right, left));
            r = !gt;
          } else if (op == ">=") {
            TANDEM_ASSIGN_OR_RETURN(bool lt, Less(left, right));
            r = !lt;
          } else if (op == "in" || op == "notin") {
            TANDEM_ASSIGN_OR_RETURN(bool in, Contains(right, left));
            r = (op == "in") == in;
          }
          if (!r) return Value::Bool(false);
          left = std::move(right);
        }
        return Value::Bool(true);
      }
      case Expr::Kind::kCond: {
        TANDEM_ASSIGN_OR_RETURN(Value c, Eval(*e.args[1]));
        if (c.Truthy()) return Eval(*e.args[0]);
        if (e.args[2]) return Eval(*e.args[2]);
        return Value::Undefined();
      }
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        List items;
        for (const auto& a : e.args) {
          TANDEM_ASSIGN_OR_RETURN(Value v, Eval(*a));
          items.push_back(std::move(v));
        }
        return e.kind == Expr::Kind::kTuple ? Value::MakeTuple(std::move(items)) : Value::MakeList(std::move(items));
      }
      case Expr::Kind::kDict: {
        Value d = Value::MakeDict();
        for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
          TANDEM_ASSIGN_OR_RETURN(Value key, Eval(*e.args[k]));
          if (!key.is_string()) return Error(e.line, "dict literal keys must be strings");
          TANDEM_ASSIGN_OR_RETURN(Value v, Eval(*e.args[k + 1]));
          d.Set(key.s, std::move(v));
        }
        return d;
      }
    }
    return Error(e.line, "unknown expression");
  }

  std::vector<Scope> scopes_;
  int loop_depth_ = 0;
};

}  // namespace

absl::StatusOr<std::string> Render(const Template& tmpl, const Value& variables) {
  if (!variables.is_mapping()) return absl::InvalidArgumentError("template variables must be a mapping");
  Interpreter interp(variables);
  std::string out;
  Flow flow = Flow::kNormal;
  TANDEM_RETURN_IF_ERROR(interp.Exec(tmpl.body, &out, &flow));
  return out;
}

}  // namespace tandem::tokenizer::jinja
