package mgmt

import (
	"errors"
	"net/http"
	"strings"

	"github.com/warren-mq/warren/internal/amqp091"
	"github.com/warren-mq/warren/internal/broker"
)

// brokerError maps an error of the broker's operator API to the response
// RabbitMQ's management plugin gives for it: AMQP reply codes become HTTP
// codes, and the reply text loses its "NOT_FOUND - " style prefix.
func brokerError(err error) *apiError {
	var ae *amqp091.Error
	if errors.As(err, &ae) {
		text := ae.Text
		if name := amqp091.ReplyName(ae.Code); name != "" {
			text = strings.TrimPrefix(text, name+" - ")
		}
		switch ae.Code {
		case amqp091.NotFound:
			return &apiError{http.StatusNotFound, "not_found", text}
		case amqp091.AccessRefused:
			return &apiError{http.StatusUnauthorized, "not_authorised", "Access refused."}
		case amqp091.ResourceLocked:
			return &apiError{http.StatusBadRequest, "bad_request", text}
		}
		return &apiError{http.StatusBadRequest, "bad_request", text}
	}
	var vf *broker.ValidationFailed
	if errors.As(err, &vf) {
		return &apiError{http.StatusBadRequest, "bad_request", "Validation failed\n\n" + vf.Reason + "\n"}
	}
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return &apiError{http.StatusRequestEntityTooLarge, "bad_request", "request body too large"}
	}
	return &apiError{http.StatusBadRequest, "bad_request", err.Error()}
}
