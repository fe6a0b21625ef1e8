// Captures the library's log records (the "dogpile" channel) while a LogCapture lives: an
// application sink, as an application would add one.
#pragma once

#include <boost/log/attributes/value_extraction.hpp>
#include <boost/log/core.hpp>
#include <boost/log/sinks/basic_sink_backend.hpp>
#include <boost/log/sinks/sync_frontend.hpp>
#include <boost/log/trivial.hpp>
#include <boost/make_shared.hpp>
#include <string>
#include <utility>
#include <vector>

namespace test {

using Severity = boost::log::trivial::severity_level;

class LogCapture {
 public:
  LogCapture()
      : collector_(boost::make_shared<Collector>()),
        sink_(boost::make_shared<boost::log::sinks::synchronous_sink<Collector>>(collector_)) {
    boost::log::core::get()->add_sink(sink_);
  }
  ~LogCapture() { boost::log::core::get()->remove_sink(sink_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // (severity, message) of each record so far, oldest first.
  const std::vector<std::pair<Severity, std::string>>& records() const {
    return collector_->records;
  }

 private:
  class Collector
      : public boost::log::sinks::basic_sink_backend<boost::log::sinks::synchronized_feeding> {
   public:
    void consume(const boost::log::record_view& record) {
      auto channel = boost::log::extract<std::string>("Channel", record);
      auto severity = boost::log::extract<Severity>("Severity", record);
      auto message = boost::log::extract<std::string>("Message", record);
      if (channel && *channel == "dogpile" && severity && message) {
        records.emplace_back(*severity, *message);
      }
    }
    std::vector<std::pair<Severity, std::string>> records;
  };

  boost::shared_ptr<Collector> collector_;
  boost::shared_ptr<boost::log::sinks::synchronous_sink<Collector>> sink_;
};

}  // namespace test
